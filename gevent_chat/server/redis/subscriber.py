"""The receiving half of the Redis bus: one subscription, gaps filled from the Streams.

SHELL.  One greenlet (``run``) listens on the channel of every room with
local users, plus the node's own channel (private messages), and remembers
the (epoch, offset) it saw last per room.  A message past the next offset is
a gap: the missing entries are read from the Stream (XRANGE) and delivered
first.  Every (re)subscription to a room ends with the same check against
the room's meta hash, so a dropped subscription or a reconnect loses nothing
the Stream still holds.  An epoch that changed means Redis lost the room's
data: the room's local users get one notice (``MISSING_NOTICE``), and so do they
when the Stream was trimmed past what was missed.  A node's own batches are
skipped: the hub delivered them locally already.

The subscriber reads with ``get_message(timeout=None)``: redis-py's timed
wait polls with ``select.poll`` and would block the whole process.  The
bus's upkeep calls ``watch`` instead, which pings the subscription and cuts
it when no answer comes, so a connection to a Redis that vanished (no RST)
is noticed within ``3 * ping_interval``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import gevent

from ...core import codec, wire
from ...core.events import ServerNotice
from ...core.protocol import name_key
from ..bus import Inbound
from .keys import Keys
from .link import FAILURES, Link

if TYPE_CHECKING:
    from .bus import BusMetrics

__all__ = ["MISSING_NOTICE", "RECOVERY_PAGE", "RoomState", "Subscriber"]

log = logging.getLogger("gevent_chat.redis")

#: Stream entries read per XRANGE while recovering.
RECOVERY_PAGE = 500
#: The notice a room gets when lines from other servers could not be recovered.
MISSING_NOTICE = codec.encode(ServerNotice("some messages from other servers may be missing"))


@dataclass(eq=False)
class RoomState:
    """What the subscriber knows of one room with local users."""

    name: str
    channel: bytes
    epoch: str | None = None
    offset: int | None = None  # last offset delivered or skipped; None: not known yet
    members: int = 0
    listening: bool = False  # the subscription is confirmed and caught up


class _Stale(Exception):
    """The room was left while it was being recovered."""


class Subscriber:
    """The rooms this node listens to, and the greenlet that listens."""

    def __init__(self, link: Link, keys: Keys, node: str, metrics: BusMetrics, ping_interval: float) -> None:
        self.link, self.keys, self.node, self.metrics = link, keys, node, metrics
        self.ping_interval = ping_interval
        self.hub: Inbound | None = None
        #: Called with (folded nick, one line) for a private message to a user of this node.
        self.on_private: Callable[[str, bytes], None] | None = None
        self.rooms: dict[str, RoomState] = {}  # folded name -> state
        self._by_channel: dict[bytes, RoomState] = {}
        self._node_channel = keys.node_channel(node).encode()
        self._pubsub: Any = None  # redis.client.PubSub while subscribed
        self._heard = time.monotonic()  # last time the subscription said anything
        self._healthy = False  # the current subscription has received something
        self._lost = False  # a subscription ended: say so when the next one is confirmed

    # -- rooms -----------------------------------------------------------------------

    def get(self, room: str) -> RoomState | None:
        return self.rooms.get(name_key(room))

    def track(self, room: str) -> RoomState:
        """Start listening to ``room``; waits one round trip to learn where its Stream stands."""
        state = RoomState(room, self.keys.channel(room).encode())
        if self.link.is_up:
            try:
                state.epoch, state.offset = self._meta(state.name)
            except FAILURES as exc:
                self.link.failed(exc)
        self.rooms[name_key(room)] = state
        self._by_channel[state.channel] = state
        ps = self._pubsub
        if ps is not None:
            try:
                ps.subscribe(state.channel)  # the confirmation makes the subscriber catch up
            except FAILURES:
                pass  # the subscriber sees the same failure and resubscribes everything
        return state

    def untrack(self, state: RoomState) -> None:
        self.rooms.pop(name_key(state.name), None)
        self._by_channel.pop(state.channel, None)
        ps = self._pubsub
        if ps is not None:
            try:
                ps.unsubscribe(state.channel)
            except FAILURES:
                pass

    # -- the greenlet ------------------------------------------------------------------

    def run(self) -> None:
        delay = 0.0
        while True:
            self.link.up.wait()
            self._healthy = False
            try:
                self._listen()
            except FAILURES as exc:
                self.drop()
                self._lost = True
                if self._healthy:  # a subscription cut (CLIENT KILL, a watchdog): at once
                    log.warning("Redis subscription cut (%s); subscribing again", exc or type(exc).__name__)
                    delay = 0.0
                    continue
                self.link.failed(exc)
                delay = min(1.0, delay * 2 or 0.05)
                gevent.sleep(delay)  # lets the supervisor find out whether Redis is really back

    def _listen(self) -> None:
        # Typed loosely: redis-py's annotations of PubSub differ between releases.
        ps: Any = cast("Callable[[], Any]", self.link.client.pubsub)()
        self._pubsub = ps
        self._heard = time.monotonic()
        ps.subscribe(self._node_channel)
        channels = [state.channel for state in self.rooms.values()]
        if channels:
            ps.subscribe(*channels)
        while True:
            message = ps.get_message(timeout=None)  # cooperative; a timeout would poll()
            self._heard = time.monotonic()
            self._healthy = True
            if message is None:
                continue
            kind, channel = message.get("type"), message.get("channel")
            if channel == self._node_channel:
                if kind == "message":
                    self._on_private(message["data"])
                elif kind == "subscribe" and self._lost:
                    self._lost = False
                    log.warning("Redis subscription restored; catching up %d room(s)", len(self.rooms))
                continue
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

    def drop(self) -> None:
        """Forget the subscription (closing it); every room must catch up again."""
        for state in self.rooms.values():
            state.listening = False
        ps, self._pubsub = self._pubsub, None
        if ps is not None:
            try:
                ps.close()
            except FAILURES:
                pass

    def watch(self) -> None:
        """Ping a quiet subscription; cut a silent one (the upkeep calls this)."""
        ps = self._pubsub
        if ps is None:
            return
        silent = time.monotonic() - self._heard
        if silent > 3 * self.ping_interval:
            log.warning("Redis subscription silent for %.0f s; reconnecting", silent)
            ps.connection.disconnect()  # wakes the subscriber with an error
        elif silent > self.ping_interval:
            ps.ping()

    # -- messages ------------------------------------------------------------------------

    def _meta(self, room: str) -> tuple[str | None, int]:
        raw = self.link.client.hmget(self.keys.meta(room), ["e", "s"])
        raw_epoch, raw_top = cast("list[bytes | None]", raw)
        epoch = raw_epoch.decode("ascii", "replace") if raw_epoch else None
        if epoch is not None and not wire.is_valid_token(epoch):
            self.metrics.drops += 1
            epoch = None
        top = int(raw_top) if raw_top and raw_top.isdigit() else 0
        return epoch, top

    def _on_private(self, data: Any) -> None:
        try:
            nick, line = wire.decode_private(data if isinstance(data, bytes) else b"")
        except wire.WireError as exc:
            self.metrics.drops += 1
            log.debug("dropped a private message: %s", exc)
            return
        self.metrics.receives += 1
        if self.on_private is not None:
            try:
                self.on_private(nick, line)
            except Exception:  # the server's bug: keep the bus running
                log.exception("delivering a private message failed")

    def _on_message(self, state: RoomState, data: Any) -> None:
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

    def _catch_up(self, state: RoomState) -> None:
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

    def _epoch_changed(self, state: RoomState, epoch: str | None) -> None:
        if state.epoch is not None:
            self.metrics.epoch_changes += 1
            log.warning("Redis lost the messages of room %s", state.name)
            self.missing(state.name)
        state.epoch, state.offset = epoch, 0

    def _recover(self, state: RoomState, upto: int) -> None:
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
                    self.missing(state.name)
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
                self.missing(state.name)  # trimmed away, or lost
            state.offset = upto

    def _check(self, state: RoomState) -> None:
        if self.rooms.get(name_key(state.name)) is not state:
            raise _Stale

    def _deliver(self, state: RoomState, offset: int, entry: wire.Entry | None, *, recovered: bool) -> None:
        state.offset = offset
        if entry is None or entry.node == self.node or self.hub is None:
            return
        self.metrics.receives += 1
        if recovered:
            self.metrics.recovered += 1
        try:
            self.hub.receive(state.name, entry.payload, entry.lines, entry.remember)
        except Exception:  # the hub's bug: keep the bus running
            log.exception("delivering to room %s failed", state.name)

    def missing(self, room: str) -> None:
        """Tell ``room``'s local users that lines may be missing (once per event)."""
        if self.hub is not None:
            self.hub.receive(room, MISSING_NOTICE, 1, False)
