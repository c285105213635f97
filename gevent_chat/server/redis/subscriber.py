"""The receiving half of the Redis bus: one subscription, gaps filled from the Streams.

SHELL.  The node listens, for every room with local users, on a channel of
the room's that is its own (``Keys.channel(room, node)``; it joins the room's
set of listeners once the subscription is confirmed, so the publish script
sends to it), plus its own channel (private messages), and remembers the
(epoch, offset) it saw last per room.  One greenlet (``run``) keeps the subscription up; a
reader greenlet per connection (one, or one per master of a Redis Cluster,
where a room's channel is a shard channel on its slot's master) hands what
arrives to the rooms, and any connection's failure renews them all.  A message past the next offset is
a gap: the missing entries are read from the Stream (XRANGE) and delivered
first.  Every (re)subscription to a room ends with the same check against
the room's meta hash, so a dropped subscription or a reconnect loses nothing
the Stream still holds.  An epoch that changed means Redis lost the room's
data: the room's local users get one notice (``MISSING_NOTICE``), and so do they
when the Stream was trimmed past what was missed.  Redis sends a node none
of its own batches (the hub delivered them locally already): the
publisher's replies tell their offsets (``own_stored``), and the room's
offset moves over them once what precedes them has arrived.  A message past
the next offset first makes the publisher read the replies already there
(``settle``), so a batch of this node's in between is not taken for a gap.  A failover to a replica
that missed the last writes hands their offsets out again; the node's
per-room record of what each node's batches it delivered (``RoomState.seen``)
tells such batches from ones seen, and the room gets the notice.

The subscription is a ``resp.RespConnection`` of its own: one ``recv``
brings every message that arrived meanwhile, hiredis parses them, and each
batch reaches the hub as the bytes it was published as, with no per-line
work here.  It waits for messages with no timeout; the bus's upkeep calls
``watch`` instead, which pings the subscription and cuts it when no answer
comes, so a connection to a Redis that vanished (no RST) is noticed within
``3 * ping_interval``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import gevent
import redis
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore

from ...core import codec, wire
from ...core.events import ServerNotice
from ...core.protocol import name_key
from ..bus import Inbound
from .keys import Keys
from .link import FAILURES, Link
from .resp import RespConnection, pack
from .topology import Address

if TYPE_CHECKING:
    from .bus import BusMetrics

__all__ = ["MISSING_NOTICE", "RECOVERY_PAGE", "RoomState", "Subscriber"]

log = logging.getLogger("gevent_chat.redis")

#: Stream entries read per XRANGE while recovering.
RECOVERY_PAGE = 500
#: A room's own entries kept past its offset at most (more wait for a recovery).
MAX_AHEAD = 1024
#: The notice a room gets when lines from other servers could not be recovered.
MISSING_NOTICE = codec.encode(ServerNotice("some messages from other servers may be missing"))


@dataclass(eq=False)
class _Shard:
    """One subscribed connection and the greenlet reading it."""

    conn: RespConnection
    heard: float  # last time it said anything
    writing: BoundedSemaphore  # commands from several greenlets, one at a time
    reader: gevent.Greenlet[..., None] | None = None


@dataclass(eq=False)
class RoomState:
    """What the subscriber knows of one room with local users."""

    name: str
    channel: bytes
    epoch: str | None = None
    offset: int | None = None  # last offset delivered or skipped; None: not known yet
    members: int = 0
    listening: bool = False  # the subscription is confirmed and caught up
    #: Per publishing node, the highest sequence number delivered or skipped here:
    #: a node's batches reach a room's Stream in sequence order, so this tells a
    #: batch seen already from one that took the offset of a batch Redis lost.
    seen: dict[str, int] = field(default_factory=dict)
    #: (node, seq) of the entry at ``offset``, once one was read; None: not known.
    mark: tuple[str, int] | None = None
    #: This node's own entries past ``offset`` (offset -> seq), from the publisher's
    #: replies: the offset moves over them once the entries before them arrive.
    ahead: dict[int, int] = field(default_factory=dict)


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
        #: Called with (what, folded nick or None, text) for a control message (``wire.CONTROLS``).
        self.on_control: Callable[[str, str | None, str], None] | None = None
        #: Reads the publisher's replies already received (``Publisher.settle``), so the
        #: rooms know their offsets before a message past the next one counts as a gap.
        self.settle: Callable[[], None] | None = None
        self.rooms: dict[str, RoomState] = {}  # folded name -> state
        self._by_channel: dict[bytes, RoomState] = {}
        self._node_channel = keys.node_channel(node).encode()
        #: While subscribed: the connection per master (None: the node channel's, and
        #: every room's unless the rooms' channels are shard channels).
        self._shards: dict[Address | None, _Shard] = {}
        self._failure: AsyncResult[None] = AsyncResult()  # a reader's failure, for ``_listen``
        self._opening = BoundedSemaphore()
        self._healthy = False  # the current subscription has received something
        self._lost = False  # a subscription ended: say so when the next one is confirmed
        self._told_foreign = False  # something no chat server wrote was logged already

    # -- rooms -----------------------------------------------------------------------

    def get(self, room: str) -> RoomState | None:
        return self.rooms.get(name_key(room))

    def track(self, room: str) -> RoomState:
        """Start listening to ``room``; waits one round trip to learn where its Stream stands."""
        state = RoomState(room, self.keys.channel(room, self.node).encode())
        # Known before the round trip: a user entering meanwhile joins this state.
        self.rooms[name_key(room)] = state
        self._by_channel[state.channel] = state
        if self.link.is_up:
            try:
                epoch, offset = self._meta(state.name)
                if state.offset is None:  # a message may have placed it meanwhile
                    state.epoch, state.offset = epoch, offset
            except FAILURES as exc:
                self.link.failed(exc)
        if self.rooms.get(name_key(room)) is state:  # not left meanwhile
            self._subscribe(state)  # the confirmation makes the subscriber catch up
        return state

    def untrack(self, state: RoomState) -> None:
        self.rooms.pop(name_key(state.name), None)
        self._by_channel.pop(state.channel, None)
        shard = self._shards.get(self._where(state.channel))
        if shard is not None:
            self._command(shard, (b"SUNSUBSCRIBE" if self.link.sharded else b"UNSUBSCRIBE", state.channel))
        self.link.attempt(self.link.client.srem, self.keys.listeners(state.name), self.node)

    def listen_again(self) -> None:
        """Add this node to every room's listeners again (the set may have been evicted)."""
        rooms = [state.name for state in self.rooms.values() if state.listening]
        if rooms:
            pipe = self.link.client.pipeline(transaction=False)
            for room in rooms:
                pipe.sadd(self.keys.listeners(room), self.node)
            pipe.execute()

    def stop_listening(self) -> None:
        """Leave every room's listeners (shutdown); raises ``FAILURES``."""
        if self.rooms:
            pipe = self.link.client.pipeline(transaction=False)
            for state in self.rooms.values():
                pipe.srem(self.keys.listeners(state.name), self.node)
            pipe.execute()

    def _where(self, channel: bytes) -> Address | None:
        """Which connection a room's channel is subscribed on."""
        router = self.link.router
        return router.address(channel) if router is not None and self.link.sharded else None

    def _subscribe(self, state: RoomState) -> None:
        """Subscribe ``state``'s channel now, if the subscriber is subscribed at all."""
        if not self._shards:
            return  # ``_listen`` subscribes every room when it starts
        try:
            shard = self._shard(self._where(state.channel))
        except FAILURES as exc:
            self._fail(exc)
            return
        self._command(shard, (b"SSUBSCRIBE" if self.link.sharded else b"SUBSCRIBE", state.channel))

    def _shard(self, where: Address | None) -> _Shard:
        """The connection for ``where``, opened (and read by a greenlet of its own) if new."""
        with self._opening:  # connecting yields: two greenlets must not open one twice
            shard = self._shards.get(where)
            if shard is None:
                conn = RespConnection(self.link.new_connection(where), None)
                shard = self._shards[where] = _Shard(conn, time.monotonic(), BoundedSemaphore())
                shard.reader = gevent.spawn(self._read, shard)
        return shard

    def _command(self, shard: _Shard, *commands: tuple[bytes, ...]) -> None:
        """Send commands on ``shard`` in one write; their replies come to its reader."""
        try:
            with shard.writing:
                shard.conn.write(pack(commands))
        except FAILURES as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self._failure.ready():
            self._failure.set_exception(exc)

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
        """Subscribe every channel, then wait until a connection fails (and raise that)."""
        self._failure = AsyncResult()
        if self.link.router is not None:
            self.link.router.refresh()  # a slot may have moved: subscribe where it is now
        main = self._shard(None)
        self._command(main, (b"SUBSCRIBE", self._node_channel))
        groups: dict[Address | None, list[bytes]] = {}
        for state in self.rooms.values():
            groups.setdefault(self._where(state.channel), []).append(state.channel)
        verb = b"SSUBSCRIBE" if self.link.sharded else b"SUBSCRIBE"
        for where, channels in groups.items():
            # One command per channel (SSUBSCRIBE takes channels of one slot only), one write.
            self._command(self._shard(where), *[(verb, channel) for channel in channels])
        self._failure.get()

    def _read(self, shard: _Shard) -> None:
        """Hand everything ``shard`` receives to the rooms; report its failure to ``_listen``."""
        by_channel, node_channel = self._by_channel, self._node_channel
        try:
            while True:
                replies = shard.conn.read_many()
                shard.heard = time.monotonic()
                self._healthy = True
                for reply in replies:
                    if not isinstance(reply, list) or len(reply) < 2:
                        continue
                    kind, channel = reply[0], reply[1]
                    if channel == node_channel:
                        if kind == b"message":
                            self._on_private(reply[2])
                        elif kind == b"subscribe" and self._lost:
                            self._lost = False
                            log.warning(
                                "Redis subscription restored; catching up %d room(s)", len(self.rooms)
                            )
                        continue
                    state = by_channel.get(channel)
                    if state is None:
                        continue
                    try:
                        if kind in (b"message", b"smessage"):
                            self._on_message(state, reply[2])
                        elif kind in (b"subscribe", b"ssubscribe"):
                            self._catch_up(state)
                        elif kind == b"sunsubscribe":  # the slot moved (or its master failed over)
                            raise redis.ConnectionError(f"Redis dropped the subscription to {state.name}")
                    except _Stale:
                        pass
        except FAILURES as exc:
            self._fail(exc)

    def drop(self) -> None:
        """Forget the subscription (closing it); every room must catch up again."""
        for state in self.rooms.values():
            state.listening = False
        shards, self._shards = self._shards, {}
        current = gevent.getcurrent()
        for shard in shards.values():
            shard.conn.close()
            if shard.reader is not None and shard.reader is not current:
                shard.reader.kill(block=False)

    def watch(self) -> None:
        """Ping quiet subscriptions; cut a silent one (the upkeep calls this)."""
        now = time.monotonic()
        for shard in list(self._shards.values()):
            silent = now - shard.heard
            if silent > 3 * self.ping_interval:
                log.warning("Redis subscription silent for %.0f s; reconnecting", silent)
                self._fail(redis.TimeoutError(f"subscription silent for {silent:.0f} s"))
                return
            if silent > self.ping_interval:
                self._command(shard, (b"PING",))

    # -- messages ------------------------------------------------------------------------

    def foreign(self, where: str, why: object, count: int = 1) -> None:
        """Count ``count`` messages or entries found at ``where`` that no chat server wrote.

        Logged the first time only: another program sharing the Redis may
        write such things at any rate, and the log must not be its amplifier.
        """
        self.metrics.drops += count
        if not self._told_foreign:
            self._told_foreign = True
            log.warning(
                "dropped data in Redis not written by a chat server (%s: %s); counting the rest", where, why
            )
        else:
            log.debug("dropped data at %s: %s", where, why)

    def _meta(self, room: str, *, listen: bool = False) -> tuple[str | None, int]:
        """The room's epoch and last offset; ``listen``: join its listeners first, in one round trip.

        Joined first, so a batch stored after the read reaches this node's channel.
        """
        if listen:
            pipe = self.link.client.pipeline(transaction=False)
            pipe.sadd(self.keys.listeners(room), self.node)
            pipe.hmget(self.keys.meta(room), ["e", "s"])
            raw = pipe.execute()[1]
        else:
            raw = self.link.client.hmget(self.keys.meta(room), ["e", "s"])
        raw_epoch, raw_top = cast("list[bytes | None]", raw)
        epoch = raw_epoch.decode("ascii", "replace") if raw_epoch else None
        if epoch is not None and not wire.is_valid_token(epoch):
            self.foreign(self.keys.meta(room), f"bad epoch {epoch[:40]!r}")
            epoch = None
        top = int(raw_top) if raw_top and raw_top.isdigit() else 0
        return epoch, top

    def _on_private(self, data: Any) -> None:
        if isinstance(data, bytes) and data.startswith(wire.CONTROL_MAGIC + b" "):
            self._on_control(data)
            return
        try:
            nick, line = wire.decode_private(data if isinstance(data, bytes) else b"")
        except wire.WireError as exc:
            self.foreign(self._node_channel.decode(), exc)
            return
        self.metrics.receives += 1
        if self.on_private is not None:
            try:
                self.on_private(nick, line)
            except Exception:  # the server's bug: keep the bus running
                log.exception("delivering a private message failed")

    def _on_control(self, data: bytes) -> None:
        try:
            what, nick, text = wire.decode_control(data)
        except wire.WireError as exc:
            self.foreign(self._node_channel.decode(), exc)
            return
        if self.on_control is not None:
            try:
                self.on_control(what, nick, text)
            except Exception:  # the server's bug: keep the bus running
                log.exception("acting on a word from another server failed")

    def _on_message(self, state: RoomState, data: Any) -> None:
        try:
            message = wire.decode_message(data if isinstance(data, bytes) else b"")
        except wire.WireError as exc:
            self.foreign(state.channel.decode(), exc)
            return
        if state.offset is None:  # joined while Redis was down: start here
            state.epoch, state.offset = message.epoch, message.offset - 1
        elif message.epoch != state.epoch:
            self._epoch_changed(state, message.epoch)
        assert state.offset is not None
        if message.offset > state.offset + 1 and self.settle is not None:
            self.settle()  # this node's batches before it, confirmed meanwhile
            self._check(state)
        told = False
        if message.offset <= state.offset:
            entry = message.entry
            if entry.seq <= state.seen.get(entry.node, 0):
                return  # seen already (recovered)
            self._rewound(state)  # an offset given twice: Redis lost what had it first
            told = True
        if message.offset > state.offset + 1:
            self._recover(state, message.offset - 1, told=told)
        self._deliver(state, message.offset, message.entry, recovered=False)

    def own_stored(self, folded: str, epoch: str, offset: int, seq: int) -> None:
        """Redis stored this node's batch ``seq`` of room ``folded`` at ``offset`` (the publisher's reply).

        Redis does not send a node its own batches, so this is how the room
        keeps its place: the offset moves on at once if it is the next one,
        or once the entries before it have arrived.
        """
        state = self.rooms.get(folded)
        if state is None or state.offset is None or not state.listening:
            return  # catching up: the Stream will show the entry (and a read of it is waiting)
        if state.epoch is None and state.offset == 0:
            state.epoch = epoch  # the room's first entry: this batch made its epoch
        if epoch != state.epoch or offset <= state.offset:
            return  # another epoch (a message will tell), or passed already (recovered)
        if seq > state.seen.get(self.node, 0):
            state.seen[self.node] = seq
        if offset == state.offset + 1:
            state.offset, state.mark = offset, (self.node, seq)
            self._absorb(state)
        elif len(state.ahead) < MAX_AHEAD:
            state.ahead[offset] = seq

    def _absorb(self, state: RoomState) -> None:
        """Move the offset over this node's own entries that now follow it."""
        ahead = state.ahead
        assert state.offset is not None
        while state.offset + 1 in ahead:
            state.offset += 1
            state.mark = (self.node, ahead.pop(state.offset))
        for passed in [k for k in ahead if k <= state.offset]:
            del ahead[passed]

    def _catch_up(self, state: RoomState) -> None:
        """After (re)subscribing: deliver what the Stream has past our offset."""
        epoch, top = self._meta(state.name, listen=True)
        self._check(state)
        if state.offset is None:
            state.epoch, state.offset = epoch, top
        elif epoch is None:
            if state.epoch is not None:  # Redis forgot the room, and nobody spoke since
                self._epoch_changed(state, None)
        else:
            told = False
            if epoch != state.epoch:
                self._epoch_changed(state, epoch)
            elif top < state.offset or not self._still_there(state):
                self._rewound(state)
                told = True
            if top > state.offset:
                self._recover(state, top, told=told)
        if state.ahead:
            self._absorb(state)
        state.listening = True

    def _still_there(self, state: RoomState) -> bool:
        """Whether the entry last delivered is still the one at its offset.

        A failover to a replica that had not received the last writes makes
        Redis give their offsets again, to other batches.
        """
        if state.mark is None or not state.offset:
            return True
        page = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            self.link.client.xrange(self.keys.stream(state.name), str(state.offset), str(state.offset)),
        )
        self._check(state)
        if not page:
            return True  # trimmed (or lost: then the top is below the offset too)
        try:
            entry = wire.decode_entry(page[0][1])
        except wire.WireError:
            return True
        return (entry.node, entry.seq) == state.mark

    def _rewound(self, state: RoomState) -> None:
        """Redis lost entries this node had delivered, and gave their offsets to new ones.

        The room is told, and the Stream is read again from its start: what
        was delivered already is known by its node's sequence number.
        """
        self.metrics.epoch_changes += 1
        log.warning("Redis lost messages of room %s (a failover?)", state.name)
        self.missing(state.name)
        state.offset, state.mark = 0, None
        state.ahead.clear()

    def _epoch_changed(self, state: RoomState, epoch: str | None) -> None:
        if state.epoch is not None:
            self.metrics.epoch_changes += 1
            log.warning("Redis lost the messages of room %s", state.name)
            self.missing(state.name)
        state.epoch, state.offset, state.mark = epoch, 0, None
        state.ahead.clear()

    def _recover(self, state: RoomState, upto: int, *, told: bool = False) -> None:
        """Deliver the Stream's entries after ``state.offset`` up to ``upto``, in order.

        ``told``: the room was told already that lines may be missing.
        """
        self.metrics.recoveries += 1
        assert state.offset is not None
        stream = self.keys.stream(state.name)
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
                except wire.WireError as exc:
                    self.foreign(stream, exc)
                    continue
                if offset > state.offset + 1 and not told:
                    told = True
                    self.missing(state.name)
                try:
                    entry: wire.Entry | None = wire.decode_entry(fields)
                except wire.WireError as exc:
                    self.foreign(stream, exc)
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
        self._deliver_entry(state, offset, entry, recovered=recovered)
        if state.ahead:
            self._absorb(state)

    def _deliver_entry(
        self, state: RoomState, offset: int, entry: wire.Entry | None, *, recovered: bool
    ) -> None:
        state.offset = offset
        if entry is None:
            state.mark = None
            return
        state.mark = (entry.node, entry.seq)
        if entry.seq <= state.seen.get(entry.node, 0):
            return  # delivered already, before Redis lost its place
        state.seen[entry.node] = entry.seq
        if entry.node == self.node or self.hub is None:
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
