"""The Redis bus: several server processes, one chat.

SHELL.  ``RedisBus`` implements the hub's ``Bus`` seam (``attach``,
``publish``, ``close``) and adds what a cluster needs besides fan-out:
nick claims (``claims``), presence (``enter``/``leave``/``who``/``rooms``) and
history (``history``).  The design is Centrifuge's (``broker_redis.go``):

* **Publish** never waits: a batch goes into a bounded buffer, and one
  publisher greenlet sends it with the publish script (``scripts.PUBLISH``):
  next offset of the room, XADD to the room's Stream (MAXLEN
  ``stream_size``, also the room's history), PUBLISH.  One greenlet and one
  FIFO keep each sender's batches in order; batches waiting are pipelined.
  While Redis is down the buffer keeps up to ``buffer_size`` batches (the
  oldest go first, counted in ``metrics.overflows``) and is sent when it is back.
* **Receive**: one subscriber greenlet listens on the channel of every room
  with local users, and remembers the (epoch, offset) it saw last per room.
  A message past the next offset is a gap: the missing entries are read
  from the Stream (XRANGE) and delivered first.  Every (re)subscription to a
  room ends with the same check against the room's meta hash, so a dropped
  subscription or a reconnect loses nothing the Stream still holds.  An
  epoch that changed means Redis lost the room's data: the room's local
  users get one notice (``on_missing``), and so do they when the Stream was
  trimmed past what was missed.  A node's own batches are skipped: the hub
  delivered them locally already.
* **Validation**: everything read from Redis goes through ``core.wire``;
  what fails is dropped and counted (``metrics.drops``).

Sharding.  Every key of a room carries the hash tag ``{cluster:room}``, so
under Redis Cluster a room lives in one slot and the publish script is legal
there.  The room's channel has the tag too: with Redis >= 7, publishing
with SPUBLISH and subscribing with SSUBSCRIBE (redis-py's
``ClusterPubSub.ssubscribe``) keeps a room's traffic on the shard that owns
its keys, and a node subscribes once per shard it has rooms on.  Without
Cluster, rooms can be spread over independent Redis instances by hashing
the room name (Centrifuge's consistent hashing); claims (one key per nick)
and the node ZSET would then live on one chosen instance.  This module
speaks to one Redis; the rest of it does not depend on which.

Cooperation with gevent: see ``link``.  The subscriber reads with
``get_message(timeout=None)``: redis-py's timed wait polls with
``select.poll`` and would block the whole process.  A watchdog pings the
subscription instead, and cuts it when no answer comes, so a connection to
a Redis that vanished (no RST) is noticed within ``3 * ping_interval``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import gevent
import redis
from gevent.event import Event

from ...core import protocol, wire
from ...core.protocol import casefold
from . import scripts
from .claims import NickClaims
from .keys import Keys
from .link import ANY_ERROR, FAILURES, Link, RedisUnavailable
from .presence import Presence

__all__ = ["BusMetrics", "Inbound", "RedisBus", "RedisUnavailable"]

log = logging.getLogger("gevent_chat.redis")

#: Stream entries read per XRANGE while recovering.
RECOVERY_PAGE = 500
#: Batches sent per pipelined round trip.
PUBLISH_BATCH = 256
#: The notice a room gets when lines from other servers could not be recovered.
MISSING_NOTICE = protocol.notice("some messages from other servers may be missing")


class Inbound(Protocol):
    """The hub side of the seam: fan a batch out to the room's local members."""

    def receive(self, room: str, payload: bytes, lines: int, remember: bool) -> None: ...


@dataclass
class BusMetrics:
    """Plain counters; the metrics module may export them."""

    publishes: int = 0  # batches stored and published
    receives: int = 0  # batches from other nodes handed to the hub (live or recovered)
    recoveries: int = 0  # times the Stream was read to fill a gap or catch up
    recovered: int = 0  # batches among ``receives`` that came from the Stream
    epoch_changes: int = 0  # rooms whose data Redis lost
    drops: int = 0  # invalid messages or entries read from Redis
    overflows: int = 0  # batches dropped from a full outage buffer
    publish_errors: int = 0  # batches Redis refused (a script error), dropped


@dataclass(eq=False)
class _Room:
    """What the subscriber knows of one room with local users."""

    name: str
    channel: bytes
    epoch: str | None = None
    offset: int | None = None  # last offset delivered or skipped; None: not known yet
    members: int = 0
    listening: bool = False  # the subscription is confirmed and caught up


class _Stale(Exception):
    """The room was left while it was being recovered."""


class RedisBus:
    """Fan-out, recovery, claims and presence for one node of a cluster.

    ``start()`` connects (raises ``RedisUnavailable``); then ``attach(hub)``.
    The callbacks run in the bus's greenlets and must not block:
    ``on_lost_nick(nick)`` (a claim taken by another node; rename the user),
    ``on_departed(room, nick)`` (a dead node's user was removed; the bus has
    already told the room, locally and through Redis), ``on_missing(room)``
    (lines may be lost; by default the room gets ``MISSING_NOTICE``).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: str = "default",
        node: str | None = None,
        history: int = 50,
        stream_size: int = 1000,
        nick_ttl: int = 30,
        buffer_size: int = 10000,
        timeout: float = 2.0,
        ping_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        on_lost_nick: Callable[[str], None] | None = None,
        on_departed: Callable[[str, str], None] | None = None,
        on_missing: Callable[[str], None] | None = None,
    ) -> None:
        self.node = node or secrets.token_hex(6)
        if not wire.is_valid_token(self.node):
            raise ValueError(f"invalid node id {self.node!r}")
        try:
            self.keys = Keys(cluster)
        except ValueError as exc:
            raise RedisUnavailable(str(exc)) from exc
        self.link = Link(url, timeout)
        self.history_size = history
        self.stream_size = max(stream_size, history, 1)
        self.nick_ttl = nick_ttl
        self.ping_interval = ping_interval
        self.clock = clock
        self.on_departed = on_departed
        self.on_missing = on_missing
        self.metrics = BusMetrics()
        self.claims = NickClaims(self.link, self.keys, self.node, nick_ttl, on_lost_nick)
        self.presence = Presence(self.link, self.keys, self.node, nick_ttl)
        self._publish = self.link.client.register_script(scripts.PUBLISH)
        self._hub: Inbound | None = None
        self._rooms: dict[str, _Room] = {}  # folded name -> state
        self._by_channel: dict[bytes, _Room] = {}
        self._outbox: deque[tuple[str, int, bytes, bytes]] = deque()  # room, seq, header, payload
        self._buffer_size = buffer_size
        self._seq = 0
        self._wake = Event()
        self._pubsub: Any = None  # redis.client.PubSub while subscribed
        self._heard = time.monotonic()  # last time the subscription said anything
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        self._healthy = False  # the current subscription has received something
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def redis_up(self) -> bool:
        return self.link.is_up

    def start(self) -> None:
        """Connect and start the bus's greenlets; raises ``RedisUnavailable``."""
        self.link.start()
        self.link.on_up.append(self._after_outage)
        self._upkeep_once()
        self._greenlets = [gevent.spawn(f) for f in (self._publisher, self._subscriber, self._upkeep)]
        log.info("cluster %s on Redis %s; this server is %s", self.keys.cluster, self.link.url, self.node)

    def attach(self, hub: Inbound) -> None:
        self._hub = hub

    def close(self, timeout: float = 1.0) -> None:
        """Send what is buffered (for at most ``timeout`` s), release nicks and presence, disconnect."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        while self._outbox and self.link.is_up and time.monotonic() < deadline:
            gevent.sleep(0.01)  # lets the publisher greenlet send
        gevent.killall(self._greenlets)
        if self.link.is_up:
            try:
                self.claims.release_all()
                self.presence.clear()
            except ANY_ERROR as exc:
                log.info("could not say goodbye to Redis: %s", exc)
        self._drop_pubsub()
        self.link.close()

    # -- publishing ----------------------------------------------------------------

    def publish(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        """Queue one batch of complete lines for the room's users on other nodes; never blocks."""
        self._seq += 1
        header = wire.encode_header(self.node, self._seq, int(self.clock() * 1000), lines, remember)
        self._outbox.append((room, self._seq, header, payload))
        if len(self._outbox) > self._buffer_size:
            self._outbox.popleft()
            if not self.metrics.overflows:
                log.warning("Redis outage buffer full: dropping the oldest lines for other servers")
            self.metrics.overflows += 1
        self._wake.set()

    def _publisher(self) -> None:
        while True:
            if not self._outbox:
                self._wake.clear()
                self._wake.wait()
                continue
            self.link.up.wait()
            batch = [self._outbox[i] for i in range(min(PUBLISH_BATCH, len(self._outbox)))]
            try:
                self._send(batch)
            except FAILURES as exc:
                self.link.failed(exc)
                continue
            except redis.ResponseError as exc:
                log.error("Redis refused %d batch(es): %s", len(batch), exc)
                self.metrics.publish_errors += len(batch)
            for _ in batch:
                self._outbox.popleft()

    def _send(self, batch: list[tuple[str, int, bytes, bytes]]) -> None:
        keys = self.keys
        pipe = self.link.client.pipeline(transaction=False)
        epoch = secrets.token_hex(4)  # the epoch of a room that has none yet
        for room, seq, header, payload in batch:
            args: list[str | bytes | int] = [keys.channel(room), header, payload]
            args += [self.stream_size, epoch, self.node, seq]
            self._publish(keys=[keys.meta(room), keys.stream(room)], args=args, client=pipe)
        pipe.execute()
        self.metrics.publishes += len(batch)

    # -- rooms with local users ------------------------------------------------------

    def enter(self, nick: str, room: str) -> None:
        """``nick``, a user of this node, is now in ``room``: presence, and listen to the room.

        Waits for Redis (one round trip, at most the link's timeout) only
        when the room is new here, to learn where its Stream stands.
        """
        self.presence.join(nick, room)
        state = self._rooms.get(casefold(room))
        if state is None:
            state = self._track(room)
        state.members += 1

    def leave(self, nick: str) -> None:
        """``nick`` left its room or the server (call ``enter`` for the new room after a move)."""
        room = self.presence.leave(nick)
        state = self._rooms.get(casefold(room)) if room is not None else None
        if state is not None:
            state.members -= 1
            if state.members <= 0:
                self._untrack(state)

    def _track(self, room: str) -> _Room:
        state = _Room(room, self.keys.channel(room).encode())
        if self.link.is_up:
            try:
                self._baseline(state)
            except FAILURES as exc:
                self.link.failed(exc)
        self._rooms[casefold(room)] = state
        self._by_channel[state.channel] = state
        ps = self._pubsub
        if ps is not None:
            try:
                ps.subscribe(state.channel)  # the confirmation makes the subscriber catch up
            except FAILURES:
                pass  # the subscriber sees the same failure and resubscribes everything
        return state

    def _baseline(self, state: _Room) -> None:
        epoch, top = self._meta(state.name)
        state.epoch, state.offset = epoch, top

    def _untrack(self, state: _Room) -> None:
        self._rooms.pop(casefold(state.name), None)
        self._by_channel.pop(state.channel, None)
        ps = self._pubsub
        if ps is not None:
            try:
                ps.unsubscribe(state.channel)
            except FAILURES:
                pass

    def is_listening(self, room: str) -> bool:
        """True once live messages of ``room`` reach this node (its subscription is confirmed)."""
        state = self._rooms.get(casefold(room))
        return state is not None and state.listening

    def who(self, room: str) -> list[str] | None:
        """The nicks in ``room`` on every node; None while Redis is down (use the local view)."""
        return self.presence.who(room)

    def rooms(self) -> dict[str, int] | None:
        """Rooms with users on any node -> user count; None while Redis is down."""
        return self.presence.rooms()

    def history(self, room: str) -> list[tuple[float, bytes]] | None:
        """The room's last ``history`` chat and ``/me`` lines with the time said, oldest first.

        None while Redis is down (use the local history).  Waits for Redis.
        """
        if not self.history_size:
            return []
        if not self.link.is_up:
            return None
        try:
            return self._history(room)
        except FAILURES as exc:
            self.link.failed(exc)
            return None

    def _history(self, room: str) -> list[tuple[float, bytes]]:
        found: list[tuple[float, bytes]] = []
        start = "+"
        while len(found) < self.history_size:
            page = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                self.link.client.xrevrange(self.keys.stream(room), start, "-", count=self.history_size),
            )
            for _, fields in page:
                try:
                    entry = wire.decode_entry(fields)
                except wire.WireError:
                    self.metrics.drops += 1
                    continue
                if entry.remember:
                    for line in reversed(entry.payload.splitlines(keepends=True)):
                        found.append((entry.when, line))
            if len(page) < self.history_size:
                break
            start = "(" + page[-1][0].decode()
        return found[: self.history_size][::-1]

    # -- receiving -----------------------------------------------------------------

    def _meta(self, room: str) -> tuple[str | None, int]:
        raw = self.link.client.hmget(self.keys.meta(room), ["e", "s"])
        raw_epoch, raw_top = cast("list[bytes | None]", raw)
        epoch = raw_epoch.decode("ascii", "replace") if raw_epoch else None
        if epoch is not None and not wire.is_valid_token(epoch):
            self.metrics.drops += 1
            epoch = None
        top = int(raw_top) if raw_top and raw_top.isdigit() else 0
        return epoch, top

    def _subscriber(self) -> None:
        delay = 0.0
        while True:
            self.link.up.wait()
            self._healthy = False
            try:
                self._listen()
            except FAILURES as exc:
                self._drop_pubsub()
                if self._healthy:  # a subscription cut (CLIENT KILL, a watchdog): at once
                    delay = 0.0
                    continue
                self.link.failed(exc)
                delay = min(1.0, delay * 2 or 0.05)
                gevent.sleep(delay)  # lets the supervisor find out whether Redis is really back

    def _listen(self) -> None:
        ps = self.link.client.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        self._pubsub = ps
        self._heard = time.monotonic()
        ps.subscribe(self.keys.node_channel(self.node))
        channels = [state.channel for state in self._rooms.values()]
        if channels:
            ps.subscribe(*channels)
        while True:
            message = ps.get_message(timeout=None)  # cooperative; a timeout would poll()
            self._heard = time.monotonic()
            self._healthy = True
            if message is None:
                continue
            kind, channel = message.get("type"), message.get("channel")
            state = self._by_channel.get(channel)
            if state is None:
                continue
            try:
                if kind == "message":
                    self._on_message(state, message["data"])
                elif kind == "subscribe":
                    self._catch_up(state)
            except _Stale:
                pass

    def _drop_pubsub(self) -> None:
        for state in self._rooms.values():
            state.listening = False
        ps, self._pubsub = self._pubsub, None
        if ps is not None:
            try:
                ps.close()
            except FAILURES:
                pass

    def _on_message(self, state: _Room, data: Any) -> None:
        try:
            message = wire.decode_message(data if isinstance(data, bytes) else b"")
        except wire.WireError as exc:
            self.metrics.drops += 1
            log.debug("dropped a message on %s: %s", state.name, exc)
            return
        if state.offset is None:  # joined while Redis was down: start here
            state.epoch, state.offset = message.epoch, message.offset - 1
        elif message.epoch != state.epoch:
            self._epoch_changed(state, message.epoch)
        assert state.offset is not None
        if message.offset <= state.offset:
            return  # seen already (recovered, or before this node listened)
        if message.offset > state.offset + 1:
            self._recover(state, message.offset - 1)
        self._deliver(state, message.offset, message.entry, recovered=False)

    def _catch_up(self, state: _Room) -> None:
        """After (re)subscribing: deliver what the Stream has past our offset."""
        epoch, top = self._meta(state.name)
        self._check(state)
        if state.offset is None:
            state.epoch, state.offset = epoch, top
        elif epoch is None:
            if state.epoch is not None:  # Redis forgot the room, and nobody spoke since
                self._epoch_changed(state, None)
        else:
            if epoch != state.epoch:
                self._epoch_changed(state, epoch)
            if top > state.offset:
                self._recover(state, top)
        state.listening = True

    def _epoch_changed(self, state: _Room, epoch: str | None) -> None:
        if state.epoch is not None:
            self.metrics.epoch_changes += 1
            log.warning("Redis lost the messages of room %s", state.name)
            self._missing(state)
        state.epoch, state.offset = epoch, 0

    def _recover(self, state: _Room, upto: int) -> None:
        """Deliver the Stream's entries after ``state.offset`` up to ``upto``, in order."""
        self.metrics.recoveries += 1
        assert state.offset is not None
        stream, told = self.keys.stream(state.name), False
        while state.offset < upto:
            page = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                self.link.client.xrange(stream, str(state.offset + 1), str(upto), count=RECOVERY_PAGE),
            )
            self._check(state)
            if not page:
                break
            before = state.offset
            for raw_id, fields in page:
                try:
                    offset = wire.offset_of(raw_id)
                except wire.WireError:
                    self.metrics.drops += 1
                    continue
                if offset > state.offset + 1 and not told:
                    told = True
                    self._missing(state)
                try:
                    entry: wire.Entry | None = wire.decode_entry(fields)
                except wire.WireError:
                    self.metrics.drops += 1
                    entry = None
                self._deliver(state, offset, entry, recovered=True)
            if state.offset == before:
                break
        if state.offset < upto:
            if not told:
                self._missing(state)  # trimmed away, or lost
            state.offset = upto

    def _check(self, state: _Room) -> None:
        if self._rooms.get(casefold(state.name)) is not state:
            raise _Stale

    def _deliver(self, state: _Room, offset: int, entry: wire.Entry | None, *, recovered: bool) -> None:
        state.offset = offset
        if entry is None or entry.node == self.node or self._hub is None:
            return
        self.metrics.receives += 1
        if recovered:
            self.metrics.recovered += 1
        try:
            self._hub.receive(state.name, entry.payload, entry.lines, entry.remember)
        except Exception:  # the hub's bug: keep the bus running
            log.exception("delivering to room %s failed", state.name)

    def _missing(self, state: _Room) -> None:
        if self.on_missing is not None:
            self.on_missing(state.name)
        elif self._hub is not None:
            self._hub.receive(state.name, MISSING_NOTICE, 1, False)

    # -- upkeep: heartbeat, claims, reaping, the subscription's watchdog ----------

    def _upkeep(self) -> None:
        period = max(0.05, self.nick_ttl / 3)
        while True:
            gevent.sleep(min(period, self.ping_interval))
            if self.link.is_up:
                try:
                    self._upkeep_once()
                    self._watch_subscription()
                except FAILURES as exc:
                    self.link.failed(exc)

    def _upkeep_once(self) -> None:
        self.claims.refresh()
        for room, nick in self.presence.heartbeat():
            self._announce_departure(room, nick)

    def _watch_subscription(self) -> None:
        ps = self._pubsub
        if ps is None:
            return
        silent = time.monotonic() - self._heard
        if silent > 3 * self.ping_interval:
            log.warning("Redis subscription silent for %.0f s; reconnecting", silent)
            ps.connection.disconnect()  # wakes the subscriber with an error
        elif silent > self.ping_interval:
            ps.ping()

    def _after_outage(self) -> None:
        self._upkeep_once()  # the subscriber catches every room up when it resubscribes

    def _announce_departure(self, room: str, nick: str) -> None:
        notice = protocol.notice(f"{nick} left")
        self.publish(room, notice, 1, False)
        if self._hub is not None and casefold(room) in self._rooms:
            self._hub.receive(room, notice, 1, False)
        if self.on_departed is not None:
            self.on_departed(room, nick)
