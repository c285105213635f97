"""Several server processes, one chat: ``--redis-url`` and ``--workers`` over real sockets.

Every node is ``python -m gevent_chat.server`` in a child process, all sharing
one real ``redis-server``, and again a Redis Cluster of three masters with
one replica each (``tests/redis_server.py``; started once for the module and
flushed between tests; skipped without the binaries unless
``GEVENT_CHAT_REQUIRE_ALL=1``).  Clients are raw TCP clients, as ``nc`` would
be.  Every process started here is killed by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess as stdsubprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent
import pytest

from gevent_chat.core.config import Config, parse_args
from gevent_chat.core.errors import ConfigError
from tests.helpers import ChatClient, ServerProcess, scrape, wait_until
from tests.redis_server import RedisCluster, RedisServer, running_redis, running_redis_cluster

#: Short, so that a killed node's nicks and users go within the tests' deadlines.
TTL = 2
#: What a room is told when lines from other servers could not all be delivered.
MISSING = "*** some messages from other servers may be missing"

Nodes = Callable[..., list[ServerProcess]]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with running_redis_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def one_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as srv:
        yield srv


@pytest.fixture(params=["one", pytest.param("cluster", marks=pytest.mark.timeout(60))])
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer | RedisCluster]:
    """One redis-server, then the Redis Cluster (started once, emptied for each test).

    The longer timeout of the cluster runs covers starting it, on the first.
    """
    if request.param == "one":
        yield request.getfixturevalue("one_redis")
        return
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.wait_ready()
    cluster.flush()
    yield cluster


@contextmanager
def _starting(url: str) -> Iterator[Nodes]:
    """Start ``n`` cluster nodes at once (``extra`` arguments for each); all killed after."""
    procs: list[ServerProcess] = []

    def start(n: int, *extra: str) -> list[ServerProcess]:
        args = ["--rate-limit", "0", "--redis-url", url, "--cluster", "t"]
        args += ["--nick-ttl", str(TTL), *extra]
        started = [ServerProcess(*args) for _ in range(n)]
        procs.extend(started)
        for proc in started:
            proc.wait_listening(10)
        return started

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[Nodes]:
    """Nodes on the Redis of the test (one redis-server, then the Cluster)."""
    with _starting(redis_server.url) as start:
        yield start


@pytest.fixture
def cluster_nodes(redis_cluster: RedisCluster) -> Iterator[Nodes]:
    """Nodes on the Redis Cluster only, emptied first."""
    redis_cluster.wait_ready()
    redis_cluster.flush()
    with _starting(redis_cluster.url) as start:
        yield start


@pytest.fixture
def clients(dial: Callable[..., ChatClient]) -> Callable[[ServerProcess, str | None], ChatClient]:
    """A client to ``node``, registered as ``nick`` if given; ``dial`` closes it after the test."""

    def open_client(node: ServerProcess, nick: str | None = None) -> ChatClient:
        client = dial(node.wait_listening())
        if nick is not None:
            client.register(nick)
        return client

    return open_client


def _metrics_address(node: ServerProcess) -> tuple[str, int]:
    pattern = r"metrics on http://127\.0\.0\.1:(\d+)/metrics"
    wait_until(lambda: re.search(pattern, node.log_text()) is not None, what="the metrics line")
    match = re.search(pattern, node.log_text())
    assert match is not None
    return ("127.0.0.1", int(match.group(1)))


def _who(client: ChatClient) -> str:
    client.send("/who")
    return client.expect(r"^\*\*\* \d+ users? in #").string


def _node_id(node: ServerProcess) -> str:
    """The node id a server logs at start (``this server is ID``)."""
    pattern = r"this server is ([A-Za-z0-9_-]+)"
    wait_until(lambda: re.search(pattern, node.log_text()) is not None, what="the node id line")
    match = re.search(pattern, node.log_text())
    assert match is not None
    return match.group(1)


class Talkers:
    """Users saying numbered lines (``NICK line I``), paced like people typing, until ``stop()``."""

    def __init__(self, speakers: dict[str, ChatClient]) -> None:
        self.speakers = speakers
        self.counts = dict.fromkeys(speakers, 0)
        self._talking = True
        self._greenlets = [gevent.spawn(self._talk, nick, client) for nick, client in speakers.items()]

    def _talk(self, nick: str, client: ChatClient) -> None:
        while self._talking:
            client.send(f"{nick} line {self.counts[nick]}")
            self.counts[nick] += 1
            gevent.sleep(0.02)  # pacing: a person typing, not synchronisation

    def wait_for_more(self, lines: int, what: str) -> None:
        """Until every speaker has said ``lines`` more lines."""
        start = dict(self.counts)
        wait_until(lambda: min(c - start[n] for n, c in self.counts.items()) >= lines, what=what)

    def stop(self) -> None:
        """Stop talking; each speaker then says ``NICK done``, after which no line of theirs may come."""
        self._talking = False
        gevent.joinall(self._greenlets, raise_error=True)
        for nick, client in self.speakers.items():
            client.send(f"{nick} done")

    def assert_heard_by(self, reader: ChatClient, timeout: float = 15) -> None:
        """``reader`` got every line of every other speaker: in order, none twice, none lost.

        A line received twice would come before the speaker's ``done`` (its
        server sends in order), so reading up to it catches duplicates too.
        """
        deadline = time.monotonic() + timeout
        for nick, client in self.speakers.items():
            if client is reader:
                continue
            said = [f"{nick}: {nick} line {i}" for i in range(self.counts[nick])]
            expected = [*said, f"{nick}: {nick} done"]
            got = [line for line in reader.lines if line.startswith(f"{nick}: ")]
            while got[-1:] != expected[-1:]:
                line = reader.read_line(max(0.001, deadline - time.monotonic()))
                if line.startswith(f"{nick}: "):
                    got.append(line)
            assert got == expected, f"{nick}'s lines as heard by a reader"

    def assert_heard_or_told(self, reader: ChatClient, timeout: float = 15) -> None:
        """Like ``assert_heard_by``, but a line may be missing if ``reader`` was told so first."""
        deadline = time.monotonic() + timeout
        for nick, client in self.speakers.items():
            if client is reader:
                continue
            said = [f"{nick}: {nick} line {i}" for i in range(self.counts[nick])]
            done = f"{nick}: {nick} done"
            while done not in reader.lines:
                reader.read_line(max(0.001, deadline - time.monotonic()))
            got = [line for line in reader.lines if line.startswith(f"{nick}: ")]
            assert got[-1] == done
            assert len(set(got)) == len(got), f"{nick}'s lines twice"
            positions = [said.index(line) for line in got[:-1]]
            assert positions == sorted(positions), f"{nick}'s lines out of order"
            if len(positions) < len(said):
                assert MISSING in reader.lines, f"{nick}'s lines lost, and nobody told"


# -- one chat across nodes -----------------------------------------------------------


def test_users_on_two_nodes_chat_as_on_one_server(nodes: Nodes, clients: Callable[..., ChatClient]) -> None:
    """Joins, chat, /who, /rooms, /msg, renames, /join, history and leaves, across two nodes."""
    a, b = nodes(2)
    alice = clients(a, "alice")
    bob = clients(b)
    assert bob.register("bob") == "*** Welcome, bob! 2 users online"
    alice.expect(r"^\*\*\* bob joined #lobby$")
    alice.send("hello bob")
    bob.expect(r"^alice: hello bob$")
    bob.send("hi alice")
    bob.send("/me waves")
    alice.expect(r"^bob: hi alice$")
    alice.expect(r"^\* bob waves$")
    assert _who(alice) == "*** 2 users in #lobby: alice, bob"
    bob.send("/rooms")
    assert bob.expect(r"^\*\*\* \d+ rooms?:").string == "*** 1 room: #lobby (2)"
    bob.send("/msg Alice psst")
    assert alice.expect(r"^\*bob\*").string == "*bob* psst"
    assert bob.expect(r"^-> ").string == "-> *Alice* psst"
    bob.send("/msg nobody hello?")
    bob.expect(r"^\*\*\* no such user: nobody$")
    alice.send("/nick alicia")
    alice.expect(r"^\*\*\* you are now known as alicia$")
    bob.expect(r"^\*\*\* alice is now known as alicia$")
    # History: a joiner on either node gets the same replay, oldest first.
    dave = clients(b, "dave")
    carol = clients(a, "carol")
    for joiner in (dave, carol):
        joiner.expect(r"^\[\d\d:\d\d\] alice: hello bob$")
        joiner.expect(r"^\[\d\d:\d\d\] bob: hi alice$")
        joiner.expect(r"^\[\d\d:\d\d\] \* bob waves$")
    bob.send("/join dev")
    bob.expect(r"^\*\*\* you joined #dev$")
    alice.expect(r"^\*\*\* bob left #lobby$")
    alice.send("/rooms")
    assert alice.expect(r"^\*\*\* \d+ rooms?:").string == "*** 2 rooms: #dev (1), #lobby (3)"
    assert _who(bob) == "*** 1 user in #dev: @bob"  # its creator runs it
    dave.send("/quit")
    alice.expect(r"^\*\*\* dave left$")
    carol.expect(r"^\*\*\* dave left$")
    assert _who(alice) == "*** 2 users in #lobby: alicia, carol"


def test_one_nick_on_two_nodes_at_once_has_exactly_one_winner(
    nodes: Nodes, clients: Callable[..., ChatClient]
) -> None:
    a, b = nodes(2)
    for nick in ("zed", "Yan", "xi"):
        contenders = [clients(node) for node in (a, b, a, b, a, b)]
        for client in contenders:
            client.expect_prompt()
        # All at once: each send is one segment, and both servers read them in the same instant.
        gevent.joinall(
            [gevent.spawn(c.send, nick.swapcase() if i % 2 else nick) for i, c in enumerate(contenders)]
        )
        answers = [c.expect(r"^\*\*\* (Welcome|nickname .* is taken)").group(1) for c in contenders]
        assert answers.count("Welcome") == 1, (nick, answers)
        for client in contenders:
            client.close()


def test_taken_nick_is_free_on_another_node_as_soon_as_its_holder_leaves(
    nodes: Nodes, clients: Callable[..., ChatClient]
) -> None:
    a, b = nodes(2)
    alice = clients(a, "alice")
    other = clients(b)
    other.expect_prompt()
    other.send("alice")
    other.expect(r"^\*\*\* nickname alice is taken")
    other.expect_prompt()
    alice.send("/nick alice2")
    alice.expect(r"now known as alice2")
    other.send("alice")  # released by the rename at once, not after the TTL
    other.expect(r"^\*\*\* Welcome, alice!")
    # A clean shutdown releases every nick and presence of the node.
    a.proc.terminate()
    assert a.wait(10) == 0
    newcomer = clients(b, "alice2")
    assert _who(newcomer) == "*** 2 users in #lobby: alice, alice2"


def test_killed_node_frees_its_nicks_within_the_ttl_and_the_rooms_are_told(
    nodes: Nodes, clients: Callable[..., ChatClient]
) -> None:
    a, b = nodes(2)
    alice = clients(a, "alice")
    bob = clients(b, "bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    taker = clients(b)
    taker.expect_prompt()
    os.kill(a.pid, signal.SIGKILL)
    killed = time.monotonic()
    bob.expect(r"^\*\*\* alice left$", timeout=TTL + 3)
    assert time.monotonic() - killed < TTL + 2
    taker.send("alice")  # the claim expired with the TTL
    taker.expect(r"^\*\*\* Welcome, alice!")
    assert time.monotonic() - killed < TTL + 2.5
    assert _who(bob) == "*** 2 users in #lobby: alice, bob"


def test_nick_lost_during_an_outage_renames_the_user_and_says_so(
    nodes: Nodes, clients: Callable[..., ChatClient], redis_server: RedisServer
) -> None:
    (a,) = nodes(1)
    dana = clients(a, "dana")
    watcher = clients(a, "walt")
    # As if the claim expired while the node was cut off and another node took it.
    redis_server.plain().set("gc:t:nick:dana", "othernode", ex=60)
    dana.expect(r"^\*\*\* nickname dana was taken on another server; you are now known as dana_$")
    watcher.expect(r"^\*\*\* dana is now known as dana_$")
    dana.send("/msg walt still here")
    watcher.expect(r"^\*dana_\* still here$")


def test_what_another_program_writes_into_a_rooms_stream_or_channel_never_stops_the_room(
    nodes: Nodes, clients: Callable[..., ChatClient], redis_server: RedisServer
) -> None:
    """Junk appended to the room's Stream and published on its channel is dropped, counted
    and logged once per node; the room goes on, and nobody is told lines are missing."""
    a, b = nodes(2, "--metrics-port", "0")
    alice, bob = clients(a, "alice"), clients(b, "bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    alice.send("before")
    bob.expect(r"^alice: before$")
    plain = redis_server.plain()
    for fields in ({"d": "junk"}, {"h": "x", "d": "more junk"}):
        plain.xadd("gc:{t:lobby}:log", fields)
    for node in (a, b):  # each node hears the room on a channel of its own
        channel = f"gc:{{t:lobby}}:live:{_node_id(node)}"
        if isinstance(redis_server, RedisCluster):
            plain.spublish(channel, b"not ours")
        else:
            plain.publish(channel, b"not ours")
    for i in range(3):
        alice.send(f"after {i}")
        bob.send(f"back {i}")
    for i in range(3):
        bob.expect(rf"^alice: after {i}$")
        alice.expect(rf"^bob: back {i}$")
    metrics = [scrape(_metrics_address(node)) for node in (a, b)]
    assert sum(m["gevent_chat_cluster_drops_total"] for m in metrics) >= 3  # 2 entries, 1 message (to each)
    assert sum(m["gevent_chat_cluster_publish_errors_total"] for m in metrics) == 0
    for node in (a, b):
        assert node.log_text().count("not written by a chat server") == 1
    for user in (alice, bob):
        assert MISSING not in user.lines


# -- what a node leaves in Redis -------------------------------------------------------


@pytest.mark.timeout(40)  # four nodes start; one stops, one is killed and must be found dead
def test_room_meta_forgets_a_node_that_stopped_or_was_killed(
    nodes: Nodes, clients: Callable[..., ChatClient], redis_server: RedisServer
) -> None:
    """Each publishing node keeps a sequence field in the room's meta hash; node ids are per
    process, so without cleanup every restart of every node would leave one there for good."""
    a, b, c, d = nodes(4)
    ids = {node: _node_id(node) for node in (a, b, c, d)}
    clients(a, "alice")
    bob, carol, dave = clients(b, "bob"), clients(c, "carol"), clients(d, "dave")
    plain = redis_server.plain()

    def fields(room: str = "lobby") -> set[str]:
        return {f.decode()[2:] for f in plain.hkeys(f"gc:{{t:{room}}}:meta") if f.startswith(b"n:")}

    wait_until(lambda: fields() == set(ids.values()), what="every node's join notice published")
    bob.send("/join dev")
    bob.expect(r"^\*\*\* you joined #dev$")
    bob.send("in dev")
    wait_until(lambda: fields("dev") == {ids[b]}, what="b's field in #dev")
    bob.send("/join lobby")
    bob.expect(r"^\*\*\* you joined #lobby$")
    talk = Talkers({"carol": carol, "dave": dave})
    try:
        talk.wait_for_more(10, "talk before")
        a.proc.terminate()
        assert a.wait(10) == 0
        assert fields() == {ids[b], ids[c], ids[d]}  # removed by a itself, before it exited
        talk.wait_for_more(10, "talk after a stopped")
        os.kill(b.pid, signal.SIGKILL)
        wait_until(
            lambda: fields() == {ids[c], ids[d]} and fields("dev") == set(),
            timeout=TTL + 3,
            what="b's fields to go",
        )
        talk.wait_for_more(10, "talk after b was found dead")
    finally:
        talk.stop()
    for reader in (carol, dave):
        talk.assert_heard_by(reader)
        assert reader.lines.count("*** bob left") == 1  # found dead, and said so once
    assert _who(carol) == "*** 2 users in #lobby: carol, dave"
    assert fields() == {ids[c], ids[d]}


# -- Redis faults --------------------------------------------------------------------


@pytest.mark.timeout(30)  # a Redis restart, then both nodes reconnect with backoff
def test_chat_resumes_across_nodes_after_redis_restarts(
    nodes: Nodes, clients: Callable[..., ChatClient], redis_server: RedisServer
) -> None:
    a, b = nodes(2)
    alice = clients(a, "alice")
    bob = clients(b, "bob")
    alice.expect(r"bob joined")
    alice.send("before")
    bob.expect(r"^alice: before$")
    redis_server.restart()  # all data lost: claims, presence, Streams
    alice.send("after")
    bob.expect(r"^alice: after$", timeout=15)
    bob.send("back")
    alice.expect(r"^bob: back$", timeout=15)
    # Claims and presence were written again by their nodes.
    wait_until(lambda: _who(bob) == "*** 2 users in #lobby: alice, bob", timeout=10, what="presence back")
    taker = clients(b)
    taker.expect_prompt()
    taker.send("alice")
    taker.expect(r"^\*\*\* nickname alice is taken")


@pytest.mark.timeout(40)  # the pause must outlast the Redis timeout (2 s), then everything drains
def test_paused_redis_loses_no_line_between_nodes(
    nodes: Nodes, clients: Callable[..., ChatClient], redis_server: RedisServer
) -> None:
    a, b = nodes(2, "--metrics-port", "0")
    alice = clients(a, "alice")
    bob = clients(b, "bob")
    alice.expect(r"bob joined")
    metrics = [_metrics_address(a), _metrics_address(b)]
    assert all(scrape(m)["gevent_chat_redis_up"] == 1 for m in metrics)
    counts = {"alice": 0, "bob": 0}
    talking = True

    def talk(client: ChatClient, nick: str) -> None:
        while talking:
            client.send(f"{nick} line {counts[nick]}")
            counts[nick] += 1
            gevent.sleep(0.02)  # pacing: a person typing, not synchronisation

    talkers = [gevent.spawn(talk, alice, "alice"), gevent.spawn(talk, bob, "bob")]
    try:
        wait_until(lambda: min(counts.values()) >= 10, what="talk before the pause")
        redis_server.pause()
        try:
            wait_until(
                lambda: all(scrape(m)["gevent_chat_redis_up"] == 0 for m in metrics),
                timeout=15,
                what="both nodes to see Redis down",
            )
        finally:
            redis_server.resume()
        wait_until(
            lambda: all(scrape(m)["gevent_chat_redis_up"] == 1 for m in metrics), timeout=15, what="Redis up"
        )
        start = dict(counts)
        wait_until(lambda: min(c - start[n] for n, c in counts.items()) >= 10, what="talk after the pause")
    finally:
        talking = False
        gevent.joinall(talkers, raise_error=True)
    for reader, sender in ((alice, "bob"), (bob, "alice")):
        expected = [f"{sender}: {sender} line {i}" for i in range(counts[sender])]
        got: list[str] = []
        deadline = time.monotonic() + 15
        while len(got) < len(expected):
            line = reader.read_line(max(0.001, deadline - time.monotonic()))
            if line.startswith(f"{sender}: "):
                got.append(line)
        assert got == expected  # every line, each sender's in order, none twice
    # The stall let both heartbeats expire on Redis' clock: neither was taken for dead.
    for reader in (alice, bob):
        assert not [line for line in reader.lines if line.endswith(" left")], reader.lines
    wait_until(  # replies are read lazily: within a moment of the last line
        lambda: scrape(metrics[0])["gevent_chat_cluster_published_lines_total"] >= counts["alice"],
        what="the publishes counted",
    )
    stats = scrape(metrics[0])
    assert (
        1
        <= stats["gevent_chat_cluster_publishes_total"]
        <= stats["gevent_chat_cluster_published_lines_total"]
    )
    assert stats["gevent_chat_cluster_receives_total"] >= 1
    assert stats["gevent_chat_cluster_drops_total"] == 0


@pytest.mark.timeout(40)  # three cuts, each followed by talk; then every line is counted
def test_cutting_one_nodes_redis_connections_loses_no_line_and_nobody(
    nodes: Nodes, clients: Callable[..., ChatClient], redis_server: RedisServer
) -> None:
    """Only node a's connections to Redis are killed (CLIENT KILL) while b's stay up, as when
    one server's path to Redis drops; users on both keep talking and must not notice."""
    a, b = nodes(2, "--metrics-port", "0")
    plain = redis_server.plain()
    node_a, node_b = _node_id(a), _node_id(b)
    cluster = isinstance(redis_server, RedisCluster)

    def connections(node: str) -> set[tuple[int, int]]:
        return redis_server.client_ids(f"gevent-chat:{node}")

    alice, carol = clients(a, "alice"), clients(a, "carol")
    bob, dave = clients(b, "bob"), clients(b, "dave")
    users = (alice, carol, bob, dave)
    wait_until(lambda: _who(carol) == "*** 4 users in #lobby: alice, bob, carol, dave", what="all four")
    of_b = connections(node_b)
    assert len(connections(node_a)) >= 2  # the pool's and the subscription's
    assert of_b
    meta, missed = "gc:{t:lobby}:meta", 0

    def offset() -> int:  # the room's last offset (not XLEN: the Stream is capped)
        return int(plain.hget(meta, "s") or 0)

    talk = Talkers({"alice": alice, "bob": bob})
    try:
        talk.wait_for_more(10, "talk before the cuts")
        for cut in (1, 2, 3):
            # The last time a is also frozen (well within the TTL) until b has stored more
            # lines: a reconnects too fast otherwise for any line to be surely missed live.
            frozen = cut == 3
            if frozen:
                os.kill(a.pid, signal.SIGSTOP)
            try:
                cut_off = connections(node_a)
                redis_server.kill_clients(cut_off)
                assert not cut_off & connections(node_a)
                stored = offset()  # later ones cannot reach a live
                if frozen:
                    wait_until(lambda n=stored + 10: offset() >= n, what="b's lines while a is frozen")
                    missed = offset() - stored  # all b's: a cannot publish now
            finally:
                if frozen:
                    os.kill(a.pid, signal.SIGCONT)
            # On a Cluster, a's connections to each master are cut one by one while it runs,
            # so one cut may cost it more than one new subscription.
            wait_until(
                lambda cut=cut: a.log_text().count("Redis subscription restored") >= cut,
                what=f"a to log its new subscription after cut {cut}",
            )
            talk.wait_for_more(10, f"talk after cut {cut}")
    finally:
        talk.stop()
    for user in users:
        talk.assert_heard_by(user)
    for user in users:  # nobody left, was renamed or was told that lines went missing
        notices = [line for line in user.lines if line.startswith("*** ")]
        assert not [n for n in notices if re.search(r"left|known as|taken|missing", n)], notices
    assert _who(bob) == "*** 4 users in #lobby: alice, bob, carol, dave"
    homes = {"alice": node_a, "carol": node_a, "bob": node_b, "dave": node_b}
    assert {nick: plain.get(f"gc:t:nick:{nick}") for nick in homes} == {
        n: h.encode() for n, h in homes.items()
    }
    cuts = a.log_text().count("Redis subscription cut")
    assert cuts >= 3 if cluster else cuts == 3
    assert scrape(_metrics_address(a))["gevent_chat_cluster_recovered_total"] >= missed >= 10
    assert of_b <= connections(node_b)  # b's connections were never cut
    assert not re.search(r"Redis unreachable|Redis subscription", b.log_text())


@pytest.mark.timeout(90)  # a master dies, its replica takes over after the node timeout, then it rejoins
def test_a_master_failover_loses_at_most_what_redis_lost_and_tells_the_room(
    cluster_nodes: Nodes, clients: Callable[..., ChatClient], redis_cluster: RedisCluster
) -> None:
    """SIGKILL the master of the room's slot while users on two nodes talk: its replica
    takes over; every line still arrives once and in order, unless Redis itself lost it
    (replication is asynchronous), and then the room is told."""
    a, b = cluster_nodes(2, "--metrics-port", "0")
    alice, bob = clients(a, "alice"), clients(b, "bob")
    carol = clients(b, "carol")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    talk = Talkers({"alice": alice, "bob": bob})
    failed: RedisServer | None = None
    try:
        talk.wait_for_more(10, "talk before the failover")
        failed = redis_cluster.fail_master("gc:{t:lobby}:meta")
        talk.wait_for_more(10, "talk after the failover")
    finally:
        talk.stop()
        try:
            for user in (alice, bob, carol):
                talk.assert_heard_or_told(user, timeout=30)
        finally:
            if failed is not None:
                redis_cluster.revive(failed)
    for node in (a, b):
        assert "Redis reachable again" in node.log_text()
    assert _who(carol) == "*** 3 users in #lobby: alice, bob, carol"


# -- the command line ------------------------------------------------------------------


def _run_server(*args: str, env: dict[str, str] | None = None) -> stdsubprocess.CompletedProcess[str]:
    return stdsubprocess.run(
        [sys.executable, "-m", "gevent_chat.server", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=8,
        env={**os.environ, **(env or {})},
    )


def test_unreachable_or_wrong_redis_url_is_a_one_line_error_and_status_1(one_redis: RedisServer) -> None:
    for url, message in (
        (f"redis://127.0.0.1:{one_redis.port + 1}/0", "cannot reach Redis"),
        ("http://127.0.0.1/", "unsupported Redis URL"),
        # A password given in the URL never reaches the log, in either place it can go.
        (
            f"redis://chat:s3cret-pw@127.0.0.1:{one_redis.port + 1}/0",
            "cannot reach Redis at redis://chat:***@",
        ),
        (f"redis://127.0.0.1:{one_redis.port + 1}/0?password=s3cret-pw", "?password=***"),
        ("redis://chat:s3cret-pw@127.0.0.1:notaport/0", "invalid Redis URL 'redis://chat:***@"),
    ):
        done = _run_server("--redis-url", url)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert message in lines[0], done.stderr
        assert "s3cret-pw" not in done.stderr


def test_workers_without_redis_server_exit_2_and_say_what_to_do(tmp_path: Path) -> None:
    done = _run_server("--workers", "2", env={"PATH": str(tmp_path)})
    assert done.returncode == 2
    assert "install redis-server" in done.stderr
    assert "--redis-url" in done.stderr


def test_cluster_options_are_validated() -> None:
    assert parse_args([]).redis_url is None
    config = parse_args(["--redis-url", "redis://h:1/0", "--cluster", "prod", "--nick-ttl", "5"])
    assert (config.redis_url, config.cluster, config.nick_ttl) == ("redis://h:1/0", "prod", 5)
    assert Config().cluster == "gevent-chat"
    assert Config().nick_ttl == 30
    assert Config().workers == 1
    assert Config().redis_linger_ms == 0
    assert parse_args(["--redis-linger-ms", "0.5"]).redis_linger_ms == 0.5
    for bad in (
        {"redis_linger_ms": -1},
        {"redis_linger_ms": 101},
        {"nick_ttl": 0},
        {"workers": 0},
        {"cluster": "a b"},
        {"cluster": ""},
        {"redis_url": " "},
    ):
        with pytest.raises(ConfigError):
            Config(**bad)  # type: ignore[arg-type]


# -- --workers -------------------------------------------------------------------------


def _worker_pids(proc: ServerProcess) -> dict[int, int]:
    """Worker number -> pid of its latest start, from the supervisor's log."""
    return {int(n): int(p) for n, p in re.findall(r"worker (\d+) started \(pid (\d+)\)", proc.log_text())}


def _worker_of(proc: ServerProcess, client: ChatClient) -> int | None:
    port = client.sock.getsockname()[1]
    match = re.search(rf"connect from 127\.0\.0\.1:{port} over tcp \[worker (\d+)\]", proc.log_text())
    return int(match.group(1)) if match else None


@pytest.mark.timeout(40)  # two workers and a private redis-server start, one worker restarts
@pytest.mark.timeout(20)  # a private redis-server and two workers start
def test_a_workers_command_line_names_each_option_once() -> None:
    """``ps`` showed ``--workers 2 ... --workers 1 --reuse-port --port 0 ... --port 41234``:
    the supervisor repeated what it set for a worker after the options given."""
    if not any(os.access(os.path.join(d, "redis-server"), os.X_OK) for d in os.environ["PATH"].split(":")):
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail("redis-server is not installed; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    sup = ServerProcess("--workers=2", "--rate-limit", "0", "--nick-ttl", str(TTL))  # after --port 0
    try:
        port = sup.wait_listening(15)[1]
        for pid in _worker_pids(sup).values():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [arg.decode() for arg in f.read().split(b"\0") if arg]
            args = argv[argv.index("gevent_chat.server") + 1 :]
            options = [arg.partition("=")[0] for arg in args if arg.startswith("--")]
            assert sorted(options) == sorted(set(options)), args
            assert "--workers" not in options, args
            assert args[args.index("--port") + 1] == str(port), args
            assert {"--reuse-port", "--nick-ttl", "--rate-limit"} <= set(options), args
    finally:
        sup.kill()


def test_workers_share_one_port_form_one_chat_and_a_dead_worker_comes_back(
    clients: Callable[..., ChatClient],
) -> None:
    if not any(os.access(os.path.join(d, "redis-server"), os.X_OK) for d in os.environ["PATH"].split(":")):
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail("redis-server is not installed; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    sup = ServerProcess("--workers", "2", "--rate-limit", "0", "--nick-ttl", str(TTL))
    try:
        sup.wait_listening(15)
        assert re.search(r"2 workers listening on", sup.log_text())
        users: list[ChatClient] = []
        by_worker: dict[int, list[ChatClient]] = {1: [], 2: []}
        while not (by_worker[1] and by_worker[2]):
            assert len(users) < 40, "every connection went to one worker"
            user = clients(sup, f"u{len(users)}")
            users.append(user)
            wait_until(lambda u=user: _worker_of(sup, u) is not None, what="the connect line")
            by_worker[_worker_of(sup, user) or 0].append(user)
        speaker = by_worker[1][0]
        speaker.send("hello everyone")
        for user in users:
            if user is not speaker:
                user.expect(r"^u\d+: hello everyone$")
        # Kill worker 2: it is restarted, and the chat goes on across both.
        old = _worker_pids(sup)[2]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: _worker_pids(sup).get(2, old) != old, timeout=10, what="worker 2 restarted")
        assert re.search(rf"worker 2 \(pid {old}\) exited with status -9; restarting", sup.log_text())
        lost = f"u{users.index(by_worker[2][0])}"
        speaker_nick = f"u{users.index(speaker)}"
        for user in by_worker[1]:
            user.expect(rf"^\*\*\* {lost} left$", timeout=TTL + 3)
        newcomers: list[ChatClient] = []
        while not any(_worker_of(sup, c) == 2 for c in newcomers):
            assert len(newcomers) < 40, "the restarted worker got no connection"
            newcomer = clients(sup, f"n{len(newcomers)}")
            newcomers.append(newcomer)
            wait_until(lambda c=newcomer: _worker_of(sup, c) is not None, what="the connect line")
        speaker.send("welcome back")
        for newcomer in newcomers:
            newcomer.expect(rf"^{speaker_nick}: welcome back$")
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.wait(15) == 0
        assert "stopped" in sup.log[-1]
        private = re.search(r"private redis-server on (\S+) \(pid (\d+)\)", sup.log_text())
        assert private is not None
        assert not os.path.exists(private.group(1))
        wait_until(lambda: not _alive(int(private.group(2))), what="the private redis-server to stop")
    finally:
        for pid in _worker_pids(sup).values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        sup.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
