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
  A batch whose send failed may have been stored all the same (the reply was
  lost): it is sent again marked as a retry, and the script skips it if so.
* **Receive**: one subscriber greenlet (``subscriber.Subscriber``) listens on
  the channel of every room with local users and fills gaps from the rooms'
  Streams, so a blip loses nothing the Stream still holds.
* **Private messages** (``private``): one script looks up the node holding
  the nick and publishes the line on that node's own channel.  They are
  at-most-once: a line to a node whose subscription is down is lost, and the
  sender was told it went out.
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

Cooperation with gevent: see ``link`` and ``subscriber``.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import gevent
import redis
from gevent.event import Event

from ...core import codec, wire
from ...core.events import Quit, Said
from ..bus import Inbound
from . import scripts
from .claims import NickClaims
from .keys import Keys
from .link import ANY_ERROR, FAILURES, Link, RedisUnavailable
from .presence import Presence
from .subscriber import MISSING_NOTICE, Subscriber

__all__ = ["MISSING_NOTICE", "BusMetrics", "Inbound", "RedisBus", "RedisUnavailable"]

log = logging.getLogger("gevent_chat.redis")

#: Batches sent per pipelined round trip.
PUBLISH_BATCH = 256


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
    privates: int = 0  # private messages sent to a user on another node


class RedisBus:
    """Fan-out, recovery, claims and presence for one node of a cluster.

    ``start()`` connects (raises ``RedisUnavailable``); then ``attach(hub)``.
    The callbacks run in the bus's greenlets and must not block:
    ``on_lost_nick(nick)`` (a claim taken by another node; rename the user),
    ``on_departed(room, nick)`` (a dead node's user was removed; the bus has
    already told the room, locally and through Redis).  Private messages for
    local users go to ``subscriber.on_private(folded_nick, line)``.
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
    ) -> None:
        self.node = node or secrets.token_hex(6)
        if not wire.is_valid_token(self.node):
            raise ValueError(f"invalid node id {self.node!r}")
        try:
            self.keys = Keys(cluster)
        except ValueError as exc:
            raise RedisUnavailable(str(exc)) from exc
        self.link = Link(url, timeout, name=f"gevent-chat:{self.node}")
        self.history_size = history
        self.stream_size = max(stream_size, history, 1)
        self.nick_ttl = nick_ttl
        self.ping_interval = ping_interval
        self.clock = clock
        self.on_departed = on_departed
        self.metrics = BusMetrics()
        self.claims = NickClaims(self.link, self.keys, self.node, nick_ttl, on_lost_nick)
        self.presence = Presence(self.link, self.keys, self.node, nick_ttl)
        self.subscriber = Subscriber(self.link, self.keys, self.node, self.metrics, ping_interval)
        self._publish = self.link.client.register_script(scripts.PUBLISH)
        self._private = self.link.client.register_script(scripts.PRIVATE)
        self._outbox: deque[tuple[str, int, bytes, bytes]] = deque()  # room, seq, header, payload
        self._buffer_size = buffer_size
        self._seq = 0
        self._unsure = 0  # batches up to this sequence number may be stored already
        self._wake = Event()
        self._greenlets: list[gevent.Greenlet[[], None]] = []
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
        self._greenlets = [gevent.spawn(f) for f in (self._publisher, self.subscriber.run, self._upkeep)]
        cluster, shown = self.keys.cluster, self.link.shown_url
        log.info("cluster %s on Redis %s; this server is %s", cluster, shown, self.node)

    def attach(self, hub: Inbound) -> None:
        self.subscriber.hub = hub

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
        self.subscriber.drop()
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
                self._unsure = max(self._unsure, batch[-1][1])
                self.link.failed(exc)
                continue
            except redis.ResponseError as exc:
                log.error("Redis refused %d batch(es): %s", len(batch), exc)
                self.metrics.publish_errors += len(batch)
            for _ in batch:
                self._outbox.popleft()

    def _send(self, batch: list[tuple[str, int, bytes, bytes]]) -> None:
        keys = self.keys
        self.presence.published_in({room for room, _, _, _ in batch})
        epoch = secrets.token_hex(4)  # the epoch of a room that has none yet
        tail = (self.stream_size, epoch, self.node)
        unsure = self._unsure
        calls: list[list[str | bytes | int]] = []
        for room, seq, header, payload in batch:
            names: list[str | bytes | int] = [keys.meta(room), keys.stream(room), keys.channel(room)]
            calls.append([*names, header, payload, *tail, seq, 1 if seq <= unsure else 0])  # 1: a retry
        if len(calls) == 1:  # the common case at low rates: one EVALSHA, no pipeline
            room = batch[0][0]
            self._publish(keys=[keys.meta(room), keys.stream(room)], args=calls[0][2:])
        else:
            try:
                self._pipelined(calls)
            except redis.exceptions.NoScriptError:  # Redis restarted: load it, send again
                self._publish.sha = self.link.client.script_load(scripts.PUBLISH)
                self._pipelined(calls)  # the script skips what was stored already
        self.metrics.publishes += len(batch)

    def _pipelined(self, calls: list[list[str | bytes | int]]) -> None:
        """EVALSHA each call in one round trip.

        Not through ``Script(client=pipe)``: that costs a SCRIPT EXISTS round
        trip on every pipeline.
        """
        pipe = self.link.client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self._publish.sha, 2, *call)
        pipe.execute()

    def private(self, nick: str, line: bytes) -> bool | None:
        """Send one complete ``line`` to ``nick`` on whichever node holds it.

        True if a node holds the nick (the line is on its way), False if
        nobody does, None while Redis is down.  Waits one round trip.
        """
        if not self.link.is_up:
            return None
        message = wire.encode_private(nick, line)
        try:
            holder = self._private(keys=[self.keys.nick(nick)], args=[self.keys.node_channel(""), message])
        except FAILURES as exc:
            self.link.failed(exc)
            return None
        if holder is None:
            return False
        self.metrics.privates += 1
        return True

    # -- the registry's directory (``core.directory.Directory``) ----------------------

    def claim(self, nick: str) -> bool:
        """Take ``nick`` cluster-wide; False if another node holds it (see ``claims``)."""
        return self.claims.claim(nick)

    def release(self, nick: str) -> None:
        self.claims.release(nick)

    # -- rooms with local users ------------------------------------------------------

    def enter(self, nick: str, room: str) -> None:
        """``nick``, a user of this node, is now in ``room``: presence, and listen to the room.

        Waits for Redis (one round trip, at most the link's timeout) only
        when the room is new here, to learn where its Stream stands.
        """
        self.presence.join(nick, room)
        state = self.subscriber.get(room)
        if state is None:
            state = self.subscriber.track(room)
        state.members += 1

    def leave(self, nick: str, room: str) -> None:
        """``nick`` left ``room`` (or the server)."""
        left = self.presence.leave(nick, room)
        state = self.subscriber.get(left) if left is not None else None
        if state is not None:
            state.members -= 1
            if state.members <= 0:
                self.subscriber.untrack(state)

    def is_listening(self, room: str) -> bool:
        """True once live messages of ``room`` reach this node (its subscription is confirmed)."""
        state = self.subscriber.get(room)
        return state is not None and state.listening

    def who(self, room: str) -> list[str] | None:
        """The nicks in ``room`` on every node; None while Redis is down (use the local view)."""
        return self.presence.who(room)

    def rooms(self) -> dict[str, int] | None:
        """Rooms with users on any node -> user count; None while Redis is down."""
        return self.presence.rooms()

    def history(self, room: str) -> list[tuple[float, Said]] | None:
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

    def _history(self, room: str) -> list[tuple[float, Said]]:
        found: list[tuple[float, Said]] = []  # newest first
        kept = 0
        start = "+"
        while kept < self.history_size:
            page = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                self.link.client.xrevrange(self.keys.stream(room), start, "-", count=self.history_size),
            )
            for _, fields in page:
                try:
                    entry = wire.decode_entry(fields)
                    event = codec.decode(entry.payload)[0] if entry.remember else None
                except (wire.WireError, codec.CodecError):
                    self.metrics.drops += 1
                    continue
                if isinstance(event, Said) and kept < self.history_size:
                    lines = event.lines[-(self.history_size - kept) :]
                    found.append((entry.when, dataclasses.replace(event, lines=lines)))
                    kept += len(lines)
            if len(page) < self.history_size:
                break
            start = "(" + page[-1][0].decode()
        return found[::-1]

    # -- upkeep: heartbeat, claims, reaping, the subscription's watchdog ----------

    def _upkeep(self) -> None:
        period = max(0.05, self.nick_ttl / 3)
        while True:
            gevent.sleep(min(period, self.ping_interval))
            if self.link.is_up:
                try:
                    self._upkeep_once()
                    self.subscriber.watch()
                except FAILURES as exc:
                    self.link.failed(exc)

    def _upkeep_once(self) -> None:
        self.claims.refresh()
        rooms_of: dict[str, list[str]] = {}
        for room, nick in self.presence.heartbeat():
            rooms_of.setdefault(nick, []).append(room)
        for nick, rooms in rooms_of.items():
            self._announce_departure(rooms, nick)

    def _after_outage(self) -> None:
        self._upkeep_once()  # the subscriber catches every room up when it resubscribes

    def _announce_departure(self, rooms: list[str], nick: str) -> None:
        """A dead node's user left ``rooms``: one ``Quit``, seen once by each user who shared one."""
        data = codec.encode(Quit(nick), rooms)
        lines = codec.line_count(data)
        hub = self.subscriber.hub
        for room in rooms:
            self.publish(room, data, lines, False)
            if hub is not None and self.subscriber.get(room) is not None:
                hub.receive(room, data, lines, False)
            if self.on_departed is not None:
                self.on_departed(room, nick)
