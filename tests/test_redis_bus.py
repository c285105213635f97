"""Two RedisBus "nodes" in one process against a real redis-server.

The bus runs on gevent sockets (``link.GeventConnection``), so both nodes
and the test share one unpatched hub.  A few steps use a plain blocking
redis-py client on purpose: while it runs no greenlet can, so what a node
misses is decided by the test, not by scheduling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis

from gevent_chat.core import codec, protocol, wire
from gevent_chat.core.events import Joined, Kind, Quit, Said
from gevent_chat.core.masks import parse_mask
from gevent_chat.core.roomstate import Ban, RoomState, Topic
from gevent_chat.server.redis import scripts
from gevent_chat.server.redis.bus import MISSING_NOTICE, RedisBus, RedisUnavailable
from gevent_chat.server.redis.keys import Keys
from gevent_chat.server.redis.publisher import Batch
from tests.helpers import wait_until
from tests.redis_server import RedisServer, running_redis


class Recorder:
    """A fake hub: remembers every batch the bus hands over."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes, int, bool]] = []

    def receive(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        self.got.append((room, payload, lines, remember))

    def payloads(self, room: str = "lobby") -> list[bytes]:
        return [p for r, p, _, _ in self.got if r == room]

    def lines(self, room: str = "lobby") -> list[bytes]:
        """Every line received for ``room``, whatever batches carried them."""
        return b"".join(self.payloads(room)).splitlines(keepends=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as srv:
        yield srv


@pytest.fixture
def make_node(server: RedisServer) -> Iterator[Callable[..., tuple[RedisBus, Recorder]]]:
    buses: list[RedisBus] = []

    def make(**options: Any) -> tuple[RedisBus, Recorder]:
        options = {"timeout": 0.5, "ping_interval": 0.5, "nick_ttl": 2, **options}
        bus = RedisBus(server.url, cluster="t", **options)
        hub = Recorder()
        bus.attach(hub)
        bus.start()
        buses.append(bus)
        return bus, hub

    yield make
    for bus in buses:
        bus.close(timeout=0)


def _lines(n: int, who: str = "alice") -> list[bytes]:
    return [f"{who}: line {i}\n".encode() for i in range(n)]


def _plain(server: RedisServer) -> redis.Redis:
    """A blocking client: nothing else runs while it waits."""
    return redis.Redis.from_url(server.url)


def _wait_subscribed(bus: RedisBus, room: str = "lobby") -> None:
    """Until ``bus`` hears ``room`` live (and has caught up with its Stream)."""
    wait_until(lambda: bus.is_listening(room), what=f"subscribed to {room}")


def _store(plain: redis.Redis, bus: RedisBus, room: str, payload: bytes, seq: int, heard: bool) -> None:
    """Publish as a third node "c" would, to the room's listeners (not ``heard``: only stored)."""
    keys = bus.keys
    header = wire.encode_header("c", seq, int(time.time() * 1000), payload.count(b"\n"), True)
    args = (keys.channel(room, ""), header, payload, 100, "ep", "c", seq)
    listeners = keys.listeners(room) if heard else keys.room(room, "nobody")
    plain.eval(scripts.PUBLISH, 3, keys.meta(room), keys.stream(room), listeners, *args)


def test_batch_published_on_one_node_reaches_the_other_in_order_and_not_itself(make_node: Any) -> None:
    """A failure means lost, reordered or echoed lines between servers."""
    a, hub_a = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    sent = _lines(300)
    for line in sent:
        a.publish("lobby", line, 1, True)
    wait_until(lambda: len(hub_b.lines()) == len(sent), what="all lines on b")
    assert hub_b.lines() == sent
    assert all(lines == p.count(b"\n") and remember for _, p, lines, remember in hub_b.got)
    b.publish("lobby", b"bob: hi\nbob: there\n", 2, True)
    wait_until(lambda: len(hub_a.got) == 1, what="b's batch on a")
    assert hub_a.got == [("lobby", b"bob: hi\nbob: there\n", 2, True)]
    wait_until(lambda: b.metrics.receives == a.metrics.publishes, what="a's replies read")  # read lazily


def test_a_nodes_own_batches_keep_its_place_in_the_room_without_a_read_of_the_stream(make_node: Any) -> None:
    """Two nodes taking turns: Redis sends neither its own batches, yet each knows the
    room's offset from its replies, so the other's next batch needs no XRANGE."""
    a, hub_a = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(a)
    _wait_subscribed(b)
    before = (a.metrics.recoveries, b.metrics.recoveries)
    offset = _offset(a)
    for i in range(20):
        a.publish("lobby", b"alice: %d\n" % i, 1, True)
        wait_until(lambda i=i: len(hub_b.got) == i + 1, what=f"alice's line {i} on b")
        b.publish("lobby", b"bob: %d\n" % i, 1, True)
        wait_until(lambda i=i: len(hub_a.got) == i + 1, what=f"bob's line {i} on a")
    assert hub_b.lines() == [b"alice: %d\n" % i for i in range(20)]
    assert hub_a.lines() == [b"bob: %d\n" % i for i in range(20)]
    assert (a.metrics.recoveries, b.metrics.recoveries) == before
    assert a.metrics.drops == b.metrics.drops == 0
    wait_until(lambda: _offset(a) == _offset(b) == offset + 40, what="b's last reply read")  # lazily


def _offset(bus: RedisBus) -> int | None:
    state = bus.subscriber.get("lobby")
    return None if state is None else state.offset


def test_lines_said_in_one_loop_turn_go_out_as_one_batch_per_room(make_node: Any) -> None:
    """What a node says in one turn costs one Stream entry and one message per room, in order."""
    a, _ = make_node()
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    b.enter("bea", "dev")
    _wait_subscribed(b)
    _wait_subscribed(b, "dev")
    a.publish("lobby", b"alice: 1\n", 1, True)
    a.publish("lobby", b"alice: 2\nalice: 3\n", 2, True)
    a.publish("lobby", b"*** carol joined\n", 1, False)
    a.publish("dev", b"dan: x\n", 1, True)
    a.publish("lobby", b"alice: 4\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 4, what="four batches")
    assert hub_b.got == [
        ("lobby", b"alice: 1\nalice: 2\nalice: 3\n", 3, True),
        ("lobby", b"*** carol joined\n", 1, False),
        ("dev", b"dan: x\n", 1, True),
        ("lobby", b"alice: 4\n", 1, True),
    ]
    wait_until(lambda: a.metrics.publishes == 4, what="a's replies read")  # read lazily


def test_publish_does_not_wait_for_redis(make_node: Any, server: RedisServer) -> None:
    a, _ = make_node()
    server.pause()
    try:
        started = time.monotonic()
        for line in _lines(1000):
            a.publish("lobby", line, 1, True)
        assert time.monotonic() - started < 0.2
    finally:
        server.resume()


def test_rooms_without_local_users_are_not_delivered(make_node: Any) -> None:
    a, _ = make_node()
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    a.publish("dev", b"alice: elsewhere\n", 1, True)
    a.publish("lobby", b"alice: here\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    assert hub_b.payloads() == [b"alice: here\n"]


def test_missed_publish_is_recovered_from_the_stream_first(make_node: Any, server: RedisServer) -> None:
    """A gap in offsets (a lost PUB/SUB message) is filled from the room's Stream, in order."""
    a, _ = make_node()
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    a.enter("alice", "lobby")
    _wait_subscribed(b)
    a.publish("lobby", b"alice: one\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    _store(_plain(server), b, "lobby", b"carol: stored only\n", 1, heard=False)
    a.publish("lobby", b"alice: three\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 3)
    assert hub_b.payloads() == [b"alice: one\n", b"carol: stored only\n", b"alice: three\n"]
    assert b.metrics.recoveries == 1
    assert b.metrics.recovered == 1


def test_killed_subscription_recovers_every_line_in_order(make_node: Any, server: RedisServer) -> None:
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    plain = _plain(server)
    _store(plain, b, "lobby", b"carol: before\n", 1, heard=True)
    wait_until(lambda: len(hub_b.got) == 1)
    recovered = b.metrics.recovered
    # Blocking calls: b's subscriber cannot run until they are all done.
    assert plain.client_kill_filter(_type="pubsub") >= 1
    sent = [f"carol: {i}\n".encode() for i in range(50)]
    for seq, line in enumerate(sent, start=2):
        _store(plain, b, "lobby", line, seq, heard=True)
    wait_until(lambda: len(hub_b.got) == 51, what="recovery after the kill")
    assert hub_b.payloads() == [b"carol: before\n", *sent]
    assert b.metrics.recovered - recovered == 50
    assert b.redis_up


@pytest.mark.timeout(30, method="thread")  # the pause lasts past the link's timeout, then everything drains
def test_paused_redis_loses_nothing(make_node: Any, server: RedisServer) -> None:
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    a.publish("lobby", b"alice: before\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    server.pause()
    try:
        sent = _lines(40)
        for line in sent:
            a.publish("lobby", line, 1, True)
        wait_until(lambda: not a.redis_up, what="a to notice the stall")
    finally:
        server.resume()
    wait_until(lambda: len(hub_b.lines()) == 41, timeout=15, what="everything after the pause")
    # A marker published after: a duplicate, if any, would arrive before it.
    a.publish("lobby", b"alice: after\n", 1, True)
    wait_until(lambda: hub_b.lines()[-1:] == [b"alice: after\n"], what="the marker")
    assert hub_b.lines() == [b"alice: before\n", *sent, b"alice: after\n"]
    wait_until(lambda: a.redis_up)
    wait_until(lambda: a.metrics.publishes >= 2, what="a's replies read")


@pytest.mark.timeout(30, method="thread")  # a restart and two reconnections
def test_restarted_redis_gives_one_missing_notice_then_goes_on(make_node: Any, server: RedisServer) -> None:
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    a.publish("lobby", b"alice: old\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    server.restart()
    wait_until(lambda: MISSING_NOTICE in hub_b.payloads(), timeout=15, what="the missing notice")
    wait_until(lambda: a.redis_up, timeout=15)
    a.publish("lobby", b"alice: new\n", 1, True)
    wait_until(lambda: b"alice: new\n" in hub_b.payloads(), timeout=15)
    assert hub_b.payloads() == [b"alice: old\n", MISSING_NOTICE, b"alice: new\n"]
    assert b.metrics.epoch_changes == 1


def test_corrupt_message_on_the_channel_is_dropped_and_counted(make_node: Any, server: RedisServer) -> None:
    a, _ = make_node()
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    plain = _plain(server)
    channel = b.keys.channel("lobby", b.node)
    plain.publish(channel, b"not ours")
    plain.publish(channel, b"gc1 e 9 c 1 1 1 1\n\x1b]0;owned\x07\n")
    a.publish("lobby", b"alice: fine\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    assert hub_b.payloads() == [b"alice: fine\n"]
    assert b.metrics.drops == 2


def test_foreign_entries_in_a_rooms_stream_never_silence_the_room(
    make_node: Any, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program's XADD (a ``*`` ID far past the room's offsets) is dropped, counted, logged once."""
    caplog.set_level(logging.WARNING, logger="gevent_chat")
    a, hub_a = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    a.publish("lobby", *codec.encoded(Said("lobby", "alice", (b"before",))), True)
    wait_until(lambda: len(hub_b.got) == 1)
    plain = _plain(server)
    stream = a.keys.stream("lobby")
    plain.xadd(stream, {"d": "junk"})
    plain.xadd(stream, {"h": "x", "d": "more junk"})
    for i in range(3):
        a.publish("lobby", *codec.encoded(Said("lobby", "alice", (b"after %d" % i,))), True)
    b.publish("lobby", *codec.encoded(Said("lobby", "bob", (b"me too",))), True)
    wait_until(lambda: len(hub_b.lines()) == 8, what="a's lines after the junk")
    wait_until(lambda: len(hub_a.got) == 1, what="b's line after the junk")
    said = [codec.decode(p)[0] for p in codec.split(b"".join(hub_b.payloads()))]
    texts = (b"before", b"after 0", b"after 1", b"after 2")
    assert said == [Said("lobby", "alice", (text,)) for text in texts]
    assert hub_a.payloads() == [codec.encode(Said("lobby", "bob", (b"me too",)))]
    assert a.metrics.publish_errors == 0
    assert b.metrics.publish_errors == 0
    assert a.metrics.drops + b.metrics.drops == 2
    assert MISSING_NOTICE not in hub_b.payloads()
    history = b.history("lobby")
    assert history is not None
    assert [said for _, said in history][-2:] == [
        Said("lobby", "alice", (b"after 2",)),
        Said("lobby", "bob", (b"me too",)),
    ]
    assert caplog.text.count("not written by a chat server") == 1


def test_foreign_entry_under_the_next_offset_is_dropped_and_the_room_goes_on(
    make_node: Any, server: RedisServer
) -> None:
    """Junk shaped like our own IDs (``<offset>-0``) is not taken for a line."""
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    a.publish("lobby", b"alice: one\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    plain = _plain(server)
    plain.xadd(a.keys.stream("lobby"), {"h": "c 1 1 1 1", "d": "\x1b]0;owned\x07\n"}, id="2-0")
    a.publish("lobby", b"alice: two\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 2, what="the line after the junk")
    assert hub_b.payloads() == [b"alice: one\n", b"alice: two\n"]
    assert a.metrics.publish_errors == 0


def test_garbage_on_a_nodes_own_channel_is_dropped_counted_and_logged_once(
    make_node: Any, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gevent_chat")
    a, _ = make_node()
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    plain = _plain(server)
    for junk in (b"junk", b"gcp1 bob\n\x1b[2J\n", b"\xff" * 10):
        plain.publish(b.keys.node_channel(b.node), junk)
    a.publish("lobby", b"alice: fine\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1)
    assert b.metrics.drops == 3
    assert caplog.text.count("not written by a chat server") == 1


def _lose_writes_after(plain: redis.Redis, bus: RedisBus, offset: int, room: str = "lobby") -> None:
    """What a failover to a replica that had only the entries up to ``offset`` does."""
    stream = bus.keys.stream(room)
    for raw_id, _ in plain.xrange(stream, f"{offset + 1}-0", "+"):
        plain.xdel(stream, raw_id)
    plain.hset(bus.keys.meta(room), "s", offset)


def _say(bus: RedisBus, hub: Recorder, line: bytes, total: int) -> None:
    """Publish ``line`` in a turn of its own; wait until ``hub`` has ``total`` lines."""
    bus.publish("lobby", line, 1, True)
    wait_until(lambda: len(hub.lines()) == total, what=f"{line!r} delivered")


def _three_lines_across(make_node: Any) -> tuple[RedisBus, RedisBus, Recorder, list[bytes]]:
    """Nodes a and b in #lobby, b subscribed, and three lines of alice's on a delivered to b one by one."""
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    sent = _lines(3)
    for i, line in enumerate(sent):
        _say(a, hub_b, line, i + 1)
    return a, b, hub_b, sent


def test_a_live_batch_given_a_lost_batchs_offset_is_delivered_and_the_room_told(
    make_node: Any, server: RedisServer
) -> None:
    a, _, hub_b, sent = _three_lines_across(make_node)
    _lose_writes_after(_plain(server), a, 1)
    a.publish("lobby", b"alice: after the loss\n", 1, True)  # offset 2, again
    wait_until(lambda: hub_b.lines()[-1:] == [b"alice: after the loss\n"], what="the line after the loss")
    assert hub_b.lines() == [*sent, *MISSING_NOTICE.splitlines(keepends=True), b"alice: after the loss\n"]


def test_a_resubscribed_room_finds_offsets_given_again_and_delivers_them(
    make_node: Any, server: RedisServer
) -> None:
    a, b, hub_b, sent = _three_lines_across(make_node)
    plain = _plain(server)
    # Blocking calls: b's subscriber cannot run until they are all done.
    assert plain.client_kill_filter(_type="pubsub") >= 1
    _lose_writes_after(plain, a, 1)
    later = [f"carol: {i}\n".encode() for i in range(3)]  # offsets 2, 3, 4
    for seq, line in enumerate(later, start=1):
        _store(plain, b, "lobby", line, seq, heard=False)
    notice = MISSING_NOTICE.splitlines(keepends=True)
    wait_until(lambda: len(hub_b.lines()) == 6 + len(notice), what="the catch-up")
    assert hub_b.lines() == [*sent, *notice, *later]


def test_what_a_room_decides_once_is_the_first_nodes_everywhere(make_node: Any, server: RedisServer) -> None:
    a, _ = make_node()
    b, _ = make_node()
    answers: dict[str, bytes | None] = {}

    def ask(bus: RedisBus, who: str) -> None:
        answers[who] = bus.decide_once("lobby", "creator", who.encode())

    gevent.joinall([gevent.spawn(ask, a, "alice"), gevent.spawn(ask, b, "bob")])
    assert answers["alice"] == answers["bob"]
    assert answers["alice"] in (b"alice", b"bob")
    assert b.decide_once("LOBBY", "creator", b"carol") == answers["alice"]
    assert a.decide_once("dev", "creator", b"carol") == b"carol"
    assert _plain(server).hget(a.keys.meta("lobby"), "x:creator") == answers["alice"]


def test_a_linger_gathers_lines_of_several_turns_into_one_batch(make_node: Any) -> None:
    a, _ = make_node(linger=0.2)
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    started = time.monotonic()
    a.publish("lobby", b"alice: 1\n", 1, True)
    gevent.sleep(0.02)  # a later loop turn, well within the linger
    a.publish("lobby", b"alice: 2\n", 1, True)
    wait_until(lambda: len(hub_b.got) == 1, what="one batch")
    assert time.monotonic() - started >= 0.2
    assert hub_b.got == [("lobby", b"alice: 1\nalice: 2\n", 2, True)]
    wait_until(lambda: a.metrics.publishes == 1, what="a's reply read")
    assert a.metrics.published_lines == 2


def test_history_is_the_same_on_every_node(make_node: Any) -> None:
    a, _ = make_node(history=3)
    b, _ = make_node(history=3)
    for event, remember in [
        (Said("lobby", "alice", (b"1", b"2")), True),
        (Joined("lobby", "bob"), False),
        (Said("lobby", "alice", (b"waves",), Kind.ME), True),
        (Said("lobby", "alice", (b"4",)), True),
    ]:
        a.publish("lobby", *codec.encoded(event), remember)
    wait_until(lambda: a.publisher.idle and a.metrics.publishes == 3)  # the last two are one batch
    for bus in (a, b):
        history = bus.history("lobby")
        assert history is not None
        assert [said for _, said in history] == [
            Said("lobby", "alice", (b"2",)),
            Said("lobby", "alice", (b"waves",), Kind.ME),
            Said("lobby", "alice", (b"4",)),
        ]
        assert all(abs(when - time.time()) < 60 for when, _ in history)


def test_simultaneous_claims_on_two_nodes_have_one_winner(make_node: Any) -> None:
    a, _ = make_node()
    b, _ = make_node()
    nicks = [f"nick{i}" for i in range(20)]
    results: list[tuple[str, str, bool]] = []

    def race(bus: RedisBus, nick: str) -> None:
        results.append((nick, bus.node, bus.claims.claim(nick)))

    gevent.joinall([gevent.spawn(race, bus, n) for n in nicks for bus in (a, b, a, b)], raise_error=True)
    for nick in nicks:
        winners = {node for n, node, won in results if n == nick and won}
        assert len(winners) == 1, (nick, winners)


def test_released_nick_is_free_at_once(make_node: Any) -> None:
    a, _ = make_node()
    b, _ = make_node()
    assert a.claims.claim("Alice")
    assert not b.claims.claim("alice")  # unique regardless of case
    a.claims.release("alice")
    assert b.claims.claim("alice")


def test_nicks_of_a_dead_node_expire_within_the_ttl(make_node: Any) -> None:
    a, _ = make_node(nick_ttl=1)
    b, _ = make_node(nick_ttl=1)
    assert a.claims.claim("alice")
    gevent.killall(a._greenlets)  # dies without a word: no refresh, no release
    started = time.monotonic()
    wait_until(lambda: b.claims.claim("alice"), timeout=3, what="alice to expire")
    assert time.monotonic() - started < 1.5


def test_claim_taken_by_another_node_is_reported_lost(make_node: Any, server: RedisServer) -> None:
    lost: list[str] = []
    a, _ = make_node(on_lost_nick=lost.append)
    b, _ = make_node()
    assert a.claims.claim("dave")
    _plain(server).delete(a.keys.nick("dave"))  # as if it expired while a was cut off
    assert b.claims.claim("dave")
    wait_until(lambda: lost == ["dave"], what="the lost claim")
    assert "dave" not in a.claims.held


def test_who_and_rooms_count_users_on_every_node(make_node: Any) -> None:
    a, _ = make_node()
    b, _ = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    b.enter("carol", "dev")
    assert a.who("lobby") == ["alice", "bob"]
    assert b.rooms() == {"lobby": 2, "dev": 1}
    b.leave("bob", "lobby")
    assert a.who("lobby") == ["alice"]
    assert a.rooms() == {"lobby": 1, "dev": 1}


def test_users_of_a_dead_node_leave_and_the_rooms_are_told(make_node: Any) -> None:
    departed: list[tuple[str, str]] = []
    a, _ = make_node(nick_ttl=1)
    b, hub_b = make_node(nick_ttl=1, on_departed=lambda room, nick: departed.append((room, nick)))
    c, hub_c = make_node(nick_ttl=1)
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    c.enter("carol", "lobby")
    assert b.who("lobby") == ["alice", "bob", "carol"]
    gevent.killall(a._greenlets)
    wait_until(lambda: b.who("lobby") == ["bob", "carol"], timeout=2, what="alice gone from /who")
    notice = codec.encode(Quit("alice"), ["lobby"])
    wait_until(lambda: notice in hub_b.payloads() and notice in hub_c.payloads(), timeout=3)
    assert hub_b.payloads().count(notice) == hub_c.payloads().count(notice) == 1
    wait_until(lambda: len(departed) + c.metrics.publishes >= 1, what="c's reply read")
    assert len(departed) + c.metrics.publishes in (1, 2)  # b or c reaped; exactly one announced


def test_unreachable_redis_at_start_is_a_clear_error(server: RedisServer) -> None:
    port = server.port
    server.kill()
    bus = RedisBus(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        bus.start()
    with pytest.raises(RedisUnavailable, match="unsupported Redis URL"):
        RedisBus("http://127.0.0.1/")


# -- the per-node sequence fields of a room's meta hash -------------------------------


def _sequence_fields(plain: redis.Redis, bus: RedisBus, room: str = "lobby") -> set[str]:
    return {f.decode() for f in plain.hkeys(bus.keys.meta(room)) if f.startswith(b"n:")}


def test_sequence_fields_go_with_their_node_when_it_stops_or_dies(
    make_node: Any, server: RedisServer
) -> None:
    """Node ids are per process: left alone, every restart would leave a field in every room."""
    plain = _plain(server)
    a, _ = make_node(nick_ttl=1)
    b, _ = make_node(nick_ttl=1)
    c, _ = make_node(nick_ttl=1)
    b.enter("bob", "lobby")
    for bus in (a, b, c):
        bus.publish("lobby", f"{bus.node}: hi\n".encode(), 1, True)
        bus.publish("dev", f"{bus.node}: there\n".encode(), 1, True)  # a room nobody is in
    wait_until(lambda: all(bus.metrics.publishes == 2 for bus in (a, b, c)), what="the publishes")
    everyone = {f"n:{bus.node}" for bus in (a, b, c)}
    assert _sequence_fields(plain, a) == _sequence_fields(plain, a, "dev") == everyone
    a.close()
    assert _sequence_fields(plain, b) == _sequence_fields(plain, b, "dev") == everyone - {f"n:{a.node}"}
    gevent.killall(c._greenlets)  # dies without a word; b reaps it
    survivor = {f"n:{b.node}"}
    wait_until(
        lambda: _sequence_fields(plain, b) == _sequence_fields(plain, b, "dev") == survivor,
        timeout=3,
        what="the dead node's fields to go",
    )
    assert plain.hget(b.keys.meta("lobby"), "s") == b"3"  # the rest of the hash is untouched


def test_retry_finds_what_was_stored_when_the_sequence_field_is_gone(
    make_node: Any, server: RedisServer
) -> None:
    """A node reaped while cut off lost its field; its retried batch must still be stored once."""
    bus, _ = make_node()
    plain = _plain(server)
    keys = bus.keys
    stream = keys.stream("lobby")

    def publish(node: str, seq: int, retry: bool) -> int:
        header = wire.encode_header(node, seq, int(time.time() * 1000), 1, True)
        args = ("nowhere", header, f"{node}: {seq}\n", 1000, "ep", node, seq, int(retry))
        offset, *_ = plain.eval(
            scripts.PUBLISH, 3, keys.meta("lobby"), stream, keys.room("lobby", "x"), *args
        )
        return int(offset)

    assert publish("c", 1, retry=False)
    assert publish("c", 2, retry=False)
    for seq in range(1, 151):  # c's entries end up more than a page (100) down the Stream
        assert publish("d", seq, retry=False)
    plain.hdel(keys.meta("lobby"), "n:c")
    assert publish("c", 2, retry=True) == 0  # stored already: found in the Stream
    assert plain.hget(keys.meta("lobby"), "n:c") == b"2"
    assert publish("c", 2, retry=True) == 0
    assert publish("c", 3, retry=True) == 153  # not stored yet
    plain.hdel(keys.meta("lobby"), "n:e")
    assert publish("e", 7, retry=True) == 154  # a node with no entry at all
    assert plain.xlen(stream) == 154


def test_batch_whose_reply_was_lost_is_delivered_once_even_after_its_node_was_reaped(
    make_node: Any, server: RedisServer
) -> None:
    a, _ = make_node()
    b, hub_b = make_node()
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    plain = _plain(server)
    send = a.publisher.send
    lost: list[int] = []

    def store_then_lose_the_reply(batches: list[Batch]) -> None:
        send(batches)
        if not lost:
            lost.append(len(batches))
            # Blocking: as if a reaper removed a's field while a was cut off.
            plain.hdel(a.keys.meta("lobby"), f"n:{a.node}")
            raise redis.ConnectionError("the reply was lost")

    a.publisher.send = store_then_lose_the_reply  # type: ignore[method-assign]
    sent = _lines(5)
    for line in sent:
        a.publish("lobby", line, 1, True)
    wait_until(lambda: bool(lost) and a.redis_up and a.publisher.idle, timeout=5, what="the retry")
    a.publish("lobby", b"alice: after\n", 1, True)  # a duplicate, if any, would arrive before it
    wait_until(lambda: hub_b.lines()[-1:] == [b"alice: after\n"], what="the marker")
    assert lost == [1]  # the five lines of one turn: one batch
    assert hub_b.lines() == [*sent, b"alice: after\n"]


@pytest.mark.timeout(30, method="thread")  # a stall past the ttl, then one death to be reaped
def test_a_stall_past_the_ttl_takes_nobody_alive_for_dead(make_node: Any, server: RedisServer) -> None:
    """When Redis stalls longer than the ttl, every node's expiry passes on the
    Redis clock; the first to beat again must not reap the others.  A node that
    really died meanwhile is still reaped, once."""
    departed: list[tuple[str, str]] = []

    def record(room: str, nick: str) -> None:
        departed.append((room, nick))

    a, _ = make_node(nick_ttl=1, on_departed=record)
    b, _ = make_node(nick_ttl=1, on_departed=record)
    c, _ = make_node(nick_ttl=1, on_departed=record)
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    c.enter("carol", "lobby")
    assert a.who("lobby") == ["alice", "bob", "carol"]
    server.pause()
    try:
        gevent.killall(c._greenlets)  # carol's node dies during the stall
        paused = time.monotonic()
        wait_until(lambda: not a.redis_up and not b.redis_up, timeout=5, what="a and b to see the stall")
        wait_until(lambda: time.monotonic() - paused > 2.0, timeout=5, what="the stall to outlast the ttl")
    finally:
        server.resume()
    wait_until(lambda: departed, timeout=10, what="the dead node to be reaped")
    wait_until(lambda: a.who("lobby") == ["alice", "bob"], timeout=5, what="carol gone from /who")
    assert departed == [("lobby", "carol")]  # alice and bob were never taken for dead
    assert b.who("lobby") == ["alice", "bob"]


def test_after_a_stall_the_first_beat_reaps_nobody_until_the_calm_is_over(server: RedisServer) -> None:
    """The heartbeat script on its own, on the Redis clock: two nodes whose expiry
    passed during a stall (no beat from anyone for longer than the ttl)."""
    plain = _plain(server)
    keys = Keys("t")
    now = int(plain.time()[0]) * 1000
    plain.zadd(keys.nodes, {"a": now - 5000, "b": now - 5000})
    plain.hset(keys.beats, "last", now - 6000)

    def beat(node: str) -> list[bytes]:
        result = plain.eval(scripts.HEARTBEAT, 3, keys.nodes, keys.beats, keys.reaping, node, 1000, 60_000)
        return list(result[1:])

    assert beat("a") == []  # b looks dead, but nobody had beaten for 6 s: a stall
    assert beat("a") == []  # still calm, although a is fresh now
    assert beat("b") == []
    plain.zadd(keys.nodes, {"b": now - 1})  # b dies after all (its expiry passes)...
    plain.hset(keys.beats, "calm", 0)  # ...and the calm is over
    assert beat("a") == [b"b"]
    assert plain.eval(scripts.REAP, 2, keys.nodes, keys.reaping, "b") == 1
    assert plain.eval(scripts.REAP, 2, keys.nodes, keys.reaping, "b") == 0  # once only


def test_a_node_back_before_its_reaper_acts_is_not_removed(server: RedisServer) -> None:
    """A heartbeat listed ``b`` as dead, then ``b`` beat again: the reap is off."""
    plain = _plain(server)
    keys = Keys("t")
    now = int(plain.time()[0]) * 1000
    plain.zadd(keys.nodes, {"a": now + 60_000, "b": now - 1})
    plain.hset(keys.beats, "last", now)
    beat = plain.eval(scripts.HEARTBEAT, 3, keys.nodes, keys.beats, keys.reaping, "a", 60_000, 60_000)
    assert beat[1:] == [b"b"]
    plain.eval(scripts.HEARTBEAT, 3, keys.nodes, keys.beats, keys.reaping, "b", 60_000, 60_000)  # b is back
    assert plain.eval(scripts.REAP, 2, keys.nodes, keys.reaping, "b") == 0
    assert plain.zscore(keys.nodes, "b") is not None


def test_a_stall_shorter_than_the_ttl_but_longer_than_half_of_it_reaps_nobody(server: RedisServer) -> None:
    """b beat a whole period before a did, then Redis stalled for most of a ttl:
    b's expiry passed although a's did not.  Nobody beat for over half a ttl, so
    that is a stall, and b is given the calm to beat again."""
    plain = _plain(server)
    keys = Keys("t")
    now = int(plain.time()[0]) * 1000
    plain.zadd(keys.nodes, {"a": now + 200, "b": now - 100})
    plain.hset(keys.beats, "last", now - 700)
    assert plain.eval(scripts.HEARTBEAT, 3, keys.nodes, keys.beats, keys.reaping, "a", 1000, 60_000)[1:] == []
    assert plain.zscore(keys.nodes, "b") is not None


def test_a_reaper_cut_off_halfway_leaves_the_rest_to_the_next_beat(
    make_node: Any, server: RedisServer
) -> None:
    """A node was moved to the reaping set, but its reaper stopped before removing its
    users: the next beat of any node removes them and tells the room, once."""
    departed: list[tuple[str, str]] = []
    b, hub_b = make_node(on_departed=lambda room, nick: departed.append((room, nick)))
    b.enter("bob", "lobby")
    plain = _plain(server)
    keys = b.keys
    plain.hset(keys.who("lobby"), protocol.name_key("xavier"), "x xavier")
    plain.sadd(keys.reaping, "x")
    wait_until(lambda: departed, timeout=5, what="the half-reaped node's user to leave")
    assert departed == [("lobby", "xavier")]
    assert plain.smembers(keys.reaping) == set()
    assert b.who("lobby") == ["bob"]
    quit = codec.encode(Quit("xavier"), ["lobby"])
    wait_until(lambda: quit in hub_b.payloads(), what="the room told")


@pytest.mark.timeout(20)  # Redis paused past the link's timeout, then the reconnection's backoff
def test_a_node_back_from_an_outage_reads_its_rooms_rules_again_or_gives_them_back(
    make_node: Any, server: RedisServer
) -> None:
    """A failure means a stale topic, or a ban lost, on a node back from an outage."""
    a, _ = make_node()
    a.enter("alice", "dev")
    a.enter("alice", "ops")
    held = {
        "dev": RoomState("dev", topic=Topic("old", "alice", 1.0)),
        "ops": RoomState("ops", bans=(Ban(parse_mask("spam*"), "alice", 2.0),)),
    }
    a.held = lambda: list(held.items())
    got: dict[str, RoomState] = {}
    a.on_rules = got.__setitem__
    plain = _plain(server)
    # #dev's topic changed on another node (the event is what this node missed).
    plain.hset(a.keys.rules("dev"), mapping={"rules": "1", "topic": '["new", "bob", 3.0]'})
    server.pause()
    try:
        wait_until(lambda: not a.redis_up, timeout=5, what="the outage noticed")
    finally:
        server.resume()
    wait_until(lambda: "dev" in got, timeout=10, what="the rules read again")
    assert got["dev"].topic == Topic("new", "bob", 3.0)
    assert "ops" not in got  # Redis had no rules for #ops: this node's are written back
    assert plain.hget(a.keys.rules("ops"), "ban:spam*") == b'["alice", 2.0]'


def test_rules_recorded_by_many_greenlets_at_once_are_each_written_once(make_node: Any) -> None:
    """Users creating rooms at the same moment: every record is written, none raises.

    Each ``record`` waits for Redis, so the others queue theirs meanwhile;
    they used to empty the queue together and fail on an empty list.
    """
    a, _ = make_node()
    rooms = [f"r{i}" for i in range(20)]
    for room in rooms:
        a.enter("alice", room)  # a room's rules are kept while it has users
    writers = [
        gevent.spawn(a.record, room, {"rules": "1", "topic": f'["about {room}", "alice", 1.0]'})
        for room in rooms
    ]
    gevent.joinall(writers, raise_error=True, timeout=5)
    assert all(w.successful() for w in writers)
    for room in rooms:
        state = a.rules(room)
        assert state is not None
        assert state.topic == Topic(f"about {room}", "alice", 1.0)


# -- the room's listeners: who the publish script sends a batch to ---------------------


def _listeners(plain: redis.Redis, bus: RedisBus, room: str = "lobby") -> set[str]:
    return {n.decode() for n in plain.smembers(bus.keys.listeners(room))}


def test_a_node_listens_while_it_has_users_in_the_room(make_node: Any, server: RedisServer) -> None:
    """In the set once its subscription is confirmed, out when its last user leaves or it stops."""
    plain = _plain(server)
    a, _ = make_node()
    b, _ = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    b.enter("bea", "lobby")
    _wait_subscribed(a)
    _wait_subscribed(b)
    assert _listeners(plain, a) == {a.node, b.node}
    b.leave("bob", "lobby")
    assert _listeners(plain, a) == {a.node, b.node}  # bea is still there
    b.leave("bea", "lobby")
    wait_until(lambda: _listeners(plain, a) == {a.node}, what="b out of the listeners")
    a.close()
    assert _listeners(plain, b) == set()


def test_a_dead_nodes_listening_goes_with_its_users(make_node: Any, server: RedisServer) -> None:
    plain = _plain(server)
    a, _ = make_node(nick_ttl=1)
    b, _ = make_node(nick_ttl=1)
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(a)
    _wait_subscribed(b)
    gevent.killall(a._greenlets)  # dies without a word; b reaps it
    wait_until(lambda: _listeners(plain, b) == {b.node}, timeout=3, what="the dead node out")


def test_a_lost_set_of_listeners_is_written_again(make_node: Any, server: RedisServer) -> None:
    """Redis may evict the set (or an operator delete it): each node adds itself again at its
    next upkeep, and lines reach it again, the ones said meanwhile from the Stream."""
    plain = _plain(server)
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    plain.delete(b.keys.listeners("lobby"))
    a.publish("lobby", b"alice: unheard\n", 1, True)  # stored; sent to nobody
    wait_until(lambda: b.node in _listeners(plain, b), timeout=3, what="b back in the listeners")
    a.publish("lobby", b"alice: heard\n", 1, True)
    wait_until(lambda: len(hub_b.lines()) == 2, what="both lines on b")
    assert hub_b.lines() == [b"alice: unheard\n", b"alice: heard\n"]


def test_two_users_entering_a_room_at_once_keep_it_heard_until_both_leave(make_node: Any) -> None:
    """Entering waits for Redis when the room is new on the node: a second user entering
    meanwhile must count in the same room, or the first to leave would stop the room for both."""
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "dev")
    where_the_room_stands = b.subscriber._meta

    def slowly(room: str, **kwargs: Any) -> tuple[str | None, int]:
        gevent.sleep(0.05)  # a slow round trip: the other user enters during it
        return where_the_room_stands(room, **kwargs)

    b.subscriber._meta = slowly  # type: ignore[method-assign]
    gevent.joinall(
        [gevent.spawn(b.enter, "bob", "dev"), gevent.spawn(b.enter, "bea", "dev")], raise_error=True
    )
    _wait_subscribed(b, "dev")
    b.leave("bob", "dev")
    a.publish("dev", b"alice: still heard\n", 1, True)
    wait_until(lambda: hub_b.lines("dev") == [b"alice: still heard\n"], what="bea still hearing #dev")


def test_scripts_flushed_from_redis_lose_and_double_no_line(make_node: Any, server: RedisServer) -> None:
    """``SCRIPT FLUSH`` (or a restart that kept the data): the refused batches are sent
    again once the script is loaded, in order, each stored once."""
    a, _ = make_node()
    b, hub_b = make_node()
    a.enter("alice", "lobby")
    b.enter("bob", "lobby")
    _wait_subscribed(b)
    plain = _plain(server)
    sent = _lines(30)
    for i, line in enumerate(sent):
        a.publish("lobby", line, 1, True)
        if i % 10 == 9:
            plain.script_flush()
        gevent.sleep(0.005)  # several batches, some refused
    wait_until(lambda: len(hub_b.lines()) == len(sent), what="every line on b")
    a.publish("lobby", b"alice: after\n", 1, True)  # a duplicate, if any, would arrive before it
    wait_until(lambda: hub_b.lines()[-1:] == [b"alice: after\n"], what="the marker")
    assert hub_b.lines() == [*sent, b"alice: after\n"]
    assert plain.xlen(a.keys.stream("lobby")) == len(hub_b.got)  # one entry per batch delivered
    assert (
        plain.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0) >= 1
    )  # refused, then sent again
