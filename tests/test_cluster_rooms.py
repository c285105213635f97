"""Room rules across a cluster: two nodes sharing one real ``redis-server``.

A topic, a ban, a mode or a kick set on one node holds on the other, in
order with the room's lines, and on a node that gets its first user of the
room later, or that comes back after Redis lost everything; a room's
creator is decided once; server bans and ``/kill`` reach every node.  Every
process started here is killed by PID (the fixtures of ``test_cluster``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from gevent_chat.core import opers
from tests import test_cluster
from tests.helpers import ChatClient, wait_until
from tests.redis_server import RedisCluster, RedisServer
from tests.test_cluster import Nodes

# The fixtures of test_cluster: a real redis-server, then a Redis Cluster; nodes sharing it, clients.
one_redis = test_cluster.one_redis
redis_cluster = test_cluster.redis_cluster
redis_server = test_cluster.redis_server
nodes = test_cluster.nodes
clients = test_cluster.clients

Clients = Callable[..., ChatClient]


def _join(client: ChatClient, room: str) -> None:
    client.send(f"/join #{room}")
    client.expect(rf"^\*\*\* you joined #{room}$")


def _sync(client: ChatClient, token: str = "sync") -> None:
    client.send(f"/ping {token}")
    client.expect(rf"^\*\*\* pong {token}$")


def test_topic_mode_and_ban_set_on_one_node_hold_on_the_other(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    bob = clients(two, "bob")
    _join(bob, "dev")
    alice.expect(r"^\*\*\* bob joined #dev$")
    bob.send("/topic mine")  # bob joined a room that existed elsewhere: not its creator
    bob.expect(r"^\*\*\* you are not an operator of #dev$")
    alice.send("/topic release day")
    bob.expect(r"^\*\*\* alice set the topic: release day$")
    bob.send("/topic")
    bob.expect(r"^\*\*\* topic: release day \(set by alice\)$")
    alice.send("/mode +m")
    bob.expect(r"^\*\*\* alice set the modes of #dev: \+m$")
    bob.send("unheard")
    bob.expect(r"^\*\*\* #dev is moderated: you cannot speak$")
    alice.send("/voice bob")
    bob.expect(r"^\*\*\* alice gave bob a voice$")
    bob.send("heard")
    alice.expect(r"^bob: heard$")
    alice.send("/ban spam*")
    bob.expect(r"^\*\*\* alice banned spam\*$")
    spammer = clients(two, "spammer")
    spammer.send("/join #dev")
    spammer.expect(r"^\*\*\* cannot join #dev: you are banned$")


def test_a_ban_set_on_one_node_kicks_a_matching_member_of_the_other(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    spammer = clients(two, "spammer")
    _join(spammer, "dev")
    alice.expect(r"^\*\*\* spammer joined #dev$")
    alice.send("/ban spam*")
    spammer.expect(r"^\*\*\* you were kicked from #dev by alice \(banned\)$")
    spammer.expect(r"^\*\*\* you joined #lobby$")
    alice.expect(r"^\*\*\* spammer was kicked by alice \(banned\)$")


def test_a_user_kicked_from_another_node_is_moved_to_the_lobby(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    bob, carol = clients(two, "bob"), clients(two, "carol")
    for client in (bob, carol):
        _join(client, "dev")
    alice.expect(r"^\*\*\* carol joined #dev$")
    for i in range(20):
        carol.send(f"before {i}")
    alice.send("/kick bob off topic")
    bob.expect(r"^\*\*\* you were kicked from #dev by alice \(off topic\)$")
    bob.expect(r"^\*\*\* you joined #lobby$")
    carol.expect(r"^\*\*\* bob was kicked by alice \(off topic\)$")
    alice.expect(r"^\*\*\* bob was kicked by alice \(off topic\)$")
    if "carol: before 19" not in alice.lines:
        alice.expect(r"^carol: before 19$")
    said = [line for line in alice.lines if line.startswith("carol: ")]
    assert said == [f"carol: before {i}" for i in range(20)]  # the kick lost none of them
    carol.send("/who")
    carol.expect(r"^\*\*\* 2 users in #dev: @alice, carol$")  # node two loaded who runs #dev
    bob.send("still talking")
    _sync(carol)
    assert not any("still talking" in line for line in carol.lines)


def test_a_nodes_first_user_of_a_room_gets_the_rules_set_before_it(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    alice.send("/topic release day")
    alice.send("/ban spam*")
    alice.send("/mode +m")
    _sync(alice)  # each command is kept in Redis before the next is read
    spammer = clients(two, "spammer")
    spammer.send("/join #dev")
    spammer.expect(r"^\*\*\* cannot join #dev: you are banned$")
    bob = clients(two, "bob")
    _join(bob, "dev")
    bob.expect(r"^\*\*\* topic: release day \(set by alice\)$")
    bob.send("unheard")
    bob.expect(r"^\*\*\* #dev is moderated: you cannot speak$")
    bob.send("/who")
    bob.expect(r"^\*\*\* 2 users in #dev: @alice, bob$")


def test_an_empty_rooms_rules_go_with_its_last_user(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    alice.send("/topic old news")
    alice.send("/ban spam*")
    _join(alice, "lobby")  # #dev is empty on every node now
    spammer = clients(two, "spammer")
    _join(spammer, "dev")  # a new #dev: no ban, no topic, and its creator runs it
    spammer.send("/topic")
    spammer.expect(r"^\*\*\* #dev has no topic$")
    spammer.send("/topic fresh")
    spammer.expect(r"^\*\*\* spammer set the topic: fresh$")


def test_two_nodes_creating_a_room_at_once_make_exactly_one_operator(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice, bob = clients(one, "alice"), clients(two, "bob")
    rooms = [f"race{i}" for i in range(6)]
    for room in rooms:  # both ask at once, each on its own node
        alice.send(f"/join #{room}")
        bob.send(f"/join #{room}")
        alice.expect(rf"^\*\*\* you joined #{room}$")
        bob.expect(rf"^\*\*\* you joined #{room}$")
        alice.send("/mode +s")
        bob.send("/mode +s")
        _sync(alice, room)
        _sync(bob, room)
        refused = [c for c in (alice, bob) if f"*** you are not an operator of #{room}" in c.lines]
        assert len(refused) == 1, (room, alice.lines[-6:], bob.lines[-6:])


OPER_PASSWORD = "correct horse"


@pytest.mark.timeout(30)  # scrypt for the operator file, and the Cluster variant
def test_server_bans_and_kill_reach_every_node(nodes: Nodes, clients: Clients, tmp_path: Path) -> None:
    path = tmp_path / "opers"
    path.write_text(f"root {opers.hash_password(OPER_PASSWORD, bytes(range(16)))}\n")
    one, two = nodes(2, "--opers-file", str(path))
    root = clients(one, "root")
    root.send(f"/oper root {OPER_PASSWORD}")
    root.expect(r"^\*\*\* you are now a server operator$")
    spammer = clients(two, "spammer1")
    root.send("/gban spam* flooding")
    root.expect(r"^\*\*\* banned spam\* from the server; 0 users disconnected$")
    spammer.expect(r"^\*\*\* you are banned from this server \(flooding\)$")
    spammer.read_until_closed()
    later = clients(two)  # registration on the other node checks the ban too
    later.expect_prompt()
    later.send("spammer2")
    later.expect(r"^\*\*\* you are banned from this server \(flooding\)$")
    later.read_until_closed()
    bob = clients(two, "bob")
    root.send("/kill bob enough")
    root.expect(r"^\*\*\* you disconnected bob$")
    bob.expect(r"^\*\*\* you were disconnected by an operator \(enough\)$")
    bob.read_until_closed()
    root.send("/kill nobody")
    root.expect(r"^\*\*\* no such user: nobody$")
    root.send("/gunban spam*")
    root.expect(r"^\*\*\* lifted the server ban on spam\*$")

    def admitted() -> bool:
        client = clients(two)
        client.expect_prompt()
        client.send("spammer3")
        line = client.expect(r"^\*\*\* (Welcome|you are banned)").string
        return "banned" not in line

    wait_until(admitted, timeout=5, what="the lifted ban on the other node")


@pytest.mark.timeout(40)  # a Redis restart, then both nodes reconnect with backoff
def test_room_rules_outlive_a_redis_restart(
    nodes: Nodes, clients: Clients, redis_server: RedisServer | RedisCluster
) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    alice.send("/topic kept")
    alice.send("/ban spam*")
    _sync(alice)
    redis_server.restart()  # everything lost; node one holds #dev and gives its rules back
    client = redis_server.plain()

    def restored() -> bool:
        try:
            return bool(client.hexists("gc:{t:dev}:rules", "ban:spam*"))
        except redis.RedisError:
            return False

    wait_until(restored, timeout=20, what="the rules written back")
    deadline = time.monotonic() + 20
    spammer = clients(two, "spammer")
    while True:  # node two may still be reconnecting: it refuses once it reads the rules
        spammer.send("/join #dev")
        line = spammer.expect(r"^\*\*\* (cannot join #dev|you joined #dev)").string
        if "cannot join" in line:
            break
        assert time.monotonic() < deadline, "node two never saw the ban"
        _join(spammer, "lobby")
    bob = clients(two, "bob")
    _join(bob, "dev")
    bob.expect(r"^\*\*\* topic: kept \(set by alice\)$")
