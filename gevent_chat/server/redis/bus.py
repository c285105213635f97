"""The Redis bus: several server processes, one chat.

SHELL.  ``RedisBus`` implements the hub's ``Bus`` seam (``attach``,
``publish``, ``close``) and adds what a cluster needs besides fan-out:
nick claims (``claims``), presence (``enter``/``leave``/``who``/``rooms``) and
history (``history``).  The design is Centrifuge's (``broker_redis.go``):

* **Publish** never waits: lines go into a bounded FIFO, and one publisher
  greenlet (``publisher.Publisher``) sends what a loop turn said in a room
  as one batch: one call of the publish script (``scripts.PUBLISH``): next
  offset of the room, XADD to the room's Stream (MAXLEN ~ ``stream_size``,
  also the room's history), PUBLISH to each other node listening to the room
  (its reply gives the publisher the offset).  One greenlet and one FIFO keep each
  sender's batches in order.  While Redis is down the FIFO keeps up to
  ``buffer_size`` publishes and is sent when it is back.  A batch whose send
  failed may have been stored all the same (the reply was lost): it is sent
  again marked as a retry, and the script skips it if so.
* **Receive**: one subscriber greenlet (``subscriber.Subscriber``) listens, for
  every room with local users, on a channel of the room's that is its own
  (and puts itself in the room's set of listeners), and fills gaps from the
  rooms' Streams, so a blip loses nothing the Stream still holds.
* **The hot path** (publish, subscription) runs on raw connections of its
  own (``resp``): commands packed by hiredis and written together, replies
  and messages parsed by hiredis from one ``recv``.  redis-py serves the
  rest (claims, presence, recovery, history), where a call per event is fine.
* **Private messages** (``private``): one script looks up the node holding
  the nick and publishes the line on that node's own channel.  They are
  at-most-once: a line to a node whose subscription is down is lost, and the
  sender was told it went out.
* **Room rules** (``record``, ``rules``, ``create``): each room's rules live in
  a hash beside its Stream (fields of ``core.records``), changed by the node
  that decided, before the event is published, so a node reading them and
  then the Stream misses nothing.  What an outage held back is written when
  Redis is back, and then every room this node holds is read again (or, if
  Redis lost it, written back from here).  The room's last user takes the
  hash with them (``scripts.LEAVE``).
* **Server bans** (``server_ban``, ``kill``): kept in one hash; a change tells
  every live node to read them again, and ``kill`` reaches the node holding
  a nick, as a private message does.
* **Validation**: everything read from Redis goes through ``core.wire``;
  what fails (another program's data) is dropped, counted (``metrics.drops``)
  and logged once; it never stops a room.

Sharding.  Every key of a room carries the hash tag ``{cluster:room}``, so
under Redis Cluster a room lives in one slot and the publish script is legal
there; the room's channel has the tag too, and with Redis >= 7 it is a shard
channel (SPUBLISH, SSUBSCRIBE), so a room's traffic stays on the master that
owns its keys.  ``link`` finds out whether the URL names a Cluster node and
``topology.Router`` then sends each command to the right master; see
``docs/scale-out.md``.

Cooperation with gevent: see ``link`` and ``subscriber``.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import gevent
from gevent.lock import BoundedSemaphore

from ...core import codec, records, wire
from ...core.events import Quit, Said
from ...core.names import name_key
from ...core.rooms import DEFAULT_ROOM
from ...core.roomstate import RoomState
from ...core.serverbans import ServerBan, ServerBans
from ..bus import Inbound
from . import scripts
from .claims import NickClaims
from .keys import Keys
from .link import ANY_ERROR, FAILURES, Link, RedisUnavailable
from .presence import Presence
from .publisher import Publisher
from .subscriber import MISSING_NOTICE, Subscriber

__all__ = ["MISSING_NOTICE", "BusMetrics", "Inbound", "RedisBus", "RedisUnavailable"]

log = logging.getLogger("gevent_chat.redis")


@dataclass
class BusMetrics:
    """Plain counters; the metrics module may export them."""

    publishes: int = 0  # batches stored and published
    published_lines: int = 0  # the lines in them
    receives: int = 0  # batches from other nodes handed to the hub (live or recovered)
    recoveries: int = 0  # times the Stream was read to fill a gap or catch up
    recovered: int = 0  # batches among ``receives`` that came from the Stream
    epoch_changes: int = 0  # rooms whose data Redis lost
    drops: int = 0  # messages or entries in Redis no chat server wrote
    overflows: int = 0  # publishes dropped from a full outage buffer
    publish_errors: int = 0  # batches Redis refused (a script error), dropped
    privates: int = 0  # private messages sent to a user on another node


class RedisBus:
    """Fan-out, recovery, claims and presence for one node of a cluster.

    ``start()`` connects (raises ``RedisUnavailable``); then ``attach(hub)``.
    The callbacks run in the bus's greenlets and must not block:
    ``on_lost_nick(nick)`` (a claim taken by another node; rename the user),
    ``on_departed(room, nick)`` (a dead node's user was removed; the bus has
    already told the room, locally and through Redis).  Private messages for
    local users go to ``subscriber.on_private(folded_nick, line)``, words from
    other nodes to ``subscriber.on_control``.  After an outage the bus reads
    the rules of the rooms ``held()`` lists again and hands each to
    ``on_rules(room, state)``, and the server bans to ``on_server_bans``.
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
        linger: float = 0.0,
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
        self._private = self.link.script(scripts.PRIVATE)
        self._decide_once = self.link.script(scripts.DECIDE_ONCE)
        self._record = self.link.script(scripts.RECORD)
        self._server_ban = self.link.script(scripts.SERVER_BAN)
        #: Changes decided while Redis was down, in order: (room, changes).
        self._unrecorded: list[tuple[str, records.Changes]] = []
        self._recording = BoundedSemaphore()  # one greenlet writes rules and bans at a time
        #: Server bans added (True) or lifted while Redis was down, in order.
        self._unsent_bans: list[tuple[ServerBan, bool]] = []
        #: The server bans as this node knows them (mask -> ban), to write back if Redis lost them.
        self._known_bans: dict[str, ServerBan] = {}
        self.held: Callable[[], list[tuple[str, RoomState]]] | None = None
        self.on_rules: Callable[[str, RoomState], None] | None = None
        self.on_server_bans: Callable[[ServerBans], None] | None = None
        self.publisher = Publisher(
            self.link,
            self.keys,
            self.node,
            self.metrics,
            stream_size=self.stream_size,
            buffer_size=buffer_size,
            linger=linger,
            clock=clock,
            before_send=self.presence.published_in,
            on_foreign=self.subscriber.foreign,
        )
        self.publisher.on_stored = self.subscriber.own_stored
        self.subscriber.settle = self.publisher.settle
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
        self._read_server_bans()
        self._greenlets = [gevent.spawn(f) for f in (self.publisher.run, self.subscriber.run, self._upkeep)]
        cluster, shown = self.keys.cluster, self.link.shown_url
        log.info("cluster %s on Redis %s; this server is %s", cluster, shown, self.node)

    def attach(self, hub: Inbound) -> None:
        self.subscriber.hub = hub

    def close(self, timeout: float = 1.0) -> None:
        """Send what is buffered (for at most ``timeout`` s), release nicks and presence, disconnect."""
        if self._closed:
            return
        self._closed = True
        self.publisher.flush(timeout)
        gevent.killall(self._greenlets)
        if self.link.is_up:
            try:
                self.claims.release_all()
                self.subscriber.stop_listening()
                self.presence.clear()
            except ANY_ERROR as exc:
                log.info("could not say goodbye to Redis: %s", exc)
        self.subscriber.drop()
        self.publisher.drop()
        self.link.close()

    # -- publishing ----------------------------------------------------------------

    def has_peers(self) -> bool:
        return True  # other nodes may join the room at any time, and the Stream is its history

    def publish(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        """Queue complete lines for the room's users on other nodes; never blocks (see ``publisher``)."""
        self.publisher.publish(room, payload, lines, remember)

    def private(self, nick: str, line: bytes) -> bool | None:
        """Send one complete ``line`` to ``nick`` on whichever node holds it.

        True if a node holds the nick (the line is on its way), False if
        nobody does, None while Redis is down.  Waits one round trip.
        """
        held = self._to_holder(nick, wire.encode_private(nick, line))
        if held:
            self.metrics.privates += 1
        return held

    def _to_holder(self, nick: str, message: bytes) -> bool | None:
        """Publish ``message`` on the channel of the node holding ``nick``: True if one does,
        False if nobody does, None while Redis is down."""
        if not self.link.is_up:
            return None
        try:
            holder = self._private(keys=[self.keys.nick(nick)], args=[self.keys.node_channel(""), message])
        except FAILURES as exc:
            self.link.failed(exc)
            return None
        return holder is not None

    def decide_once(self, room: str, name: str, value: bytes) -> bytes | None:
        """``value`` for ``name`` in ``room`` unless a node decided it first; what holds.

        For what one node must decide for the whole cluster (a room's
        creator, say).  Kept in the room's meta hash (``x:<name>``), so it
        lasts as long as the room's data.  None while Redis is down.
        """
        decided = self.link.attempt(self._decide_once, [self.keys.meta(room)], [f"x:{name}", value])
        return cast("bytes | None", decided)

    # -- room rules and server bans -------------------------------------------------

    def create(self, room: str, nick: str) -> bool | None:
        """True if ``nick`` of this node is ``room``'s creator, decided once for the cluster.

        False if the room has a creator already (it has users elsewhere, or
        one node won a race); None while Redis is down.
        """
        mine = f"{self.node} {name_key(nick)} {secrets.token_hex(4)}".encode()
        holder = self.decide_once(room, "creator", mine)
        return None if holder is None else holder == mine

    def rules(self, room: str) -> RoomState | None:
        """The cluster's rules of ``room``; None if it has none or Redis is down.  Waits for Redis."""
        return self.link.attempt(self._rules, room)

    def _rules(self, room: str) -> RoomState | None:
        raw = cast("dict[bytes, bytes]", self.link.client.hgetall(self.keys.rules(room)))
        if not raw:
            return None
        fields: dict[str, str] = {}
        for field, value in raw.items():
            try:
                fields[field.decode()] = value.decode()
            except UnicodeDecodeError:
                fields["?"] = ""  # counted as skipped below
        state, skipped = records.load(room, fields, name_key(room) == name_key(DEFAULT_ROOM))
        if skipped:
            self.subscriber.foreign(self.keys.rules(room), "unreadable fields", skipped)
        return state

    def record(self, room: str, changes: records.Changes) -> None:
        """Write ``changes`` of ``room``'s rules, decided here; waits for Redis (kept while it is down)."""
        self._unrecorded.append((room, changes))
        self.link.attempt(self._send_records)

    def _send_records(self) -> None:
        with self._recording:  # greenlets take turns: each change written once, in order
            while self._unrecorded:
                room, changes = self._unrecorded[0]
                args = [
                    x for field, value in changes.items() for x in (field, "-" if value is None else value)
                ]
                self._record(keys=[self.keys.rules(room), self.keys.who(room)], args=args)
                del self._unrecorded[0]

    def server_ban(self, ban: ServerBan, added: bool) -> None:
        """Keep the server ban ``ban`` (or lift it: not ``added``) for every node, and tell them."""
        self._unsent_bans.append((ban, added))
        if added:
            self._known_bans[ban.mask.text] = ban
        else:
            self._known_bans.pop(ban.mask.text, None)
        self.link.attempt(self._send_bans)

    def _send_bans(self) -> None:
        with self._recording:
            self._send_bans_in_turn()

    def _send_bans_in_turn(self) -> None:
        while self._unsent_bans:
            ban, added = self._unsent_bans[0]
            field, value = records.encode_server_ban(ban)
            args = ["+" if added else "-", field, value, self.keys.node_channel(""), self.node]
            args.append(wire.encode_control("gbans").decode())
            self._server_ban(keys=[self.keys.server_bans, self.keys.nodes], args=args)
            del self._unsent_bans[0]

    def read_server_bans(self) -> None:
        """Read the server bans again (another node changed them); hands them to ``on_server_bans``."""
        self.link.attempt(self._read_server_bans)

    def _read_server_bans(self, restore: bool = False) -> None:
        """Read the server bans; ``restore`` (after an outage): write back what Redis lost."""
        raw = cast("dict[bytes, bytes]", self.link.client.hgetall(self.keys.server_bans))
        if restore and not raw and self._known_bans:  # Redis lost them: what this node knows holds
            self._unsent_bans = [(ban, True) for ban in self._known_bans.values()]
            self._send_bans()
            return
        fields = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
        bans, skipped = records.load_server_bans(fields)
        self._known_bans = {ban.mask.text: ban for ban in bans.bans}
        if skipped:
            self.subscriber.foreign(self.keys.server_bans, "unreadable server bans", skipped)
        if self.on_server_bans is not None:
            self.on_server_bans(bans)

    def kill(self, nick: str, reason: str) -> bool | None:
        """Disconnect ``nick`` on whichever node holds it: True told, False nobody, None Redis down."""
        return self._to_holder(nick, wire.encode_control("kill", nick, reason))

    def _reload_rules(self) -> None:
        """After an outage: each room held here takes the cluster's rules, or gives them back."""
        if self.held is None:
            return
        for room, local in self.held():
            found = self._rules(room)
            if found is None:  # Redis lost it (a restart): what this node holds is the truth
                args = [x for kv in records.fields(local).items() for x in kv]
                self._record(keys=[self.keys.rules(room), self.keys.who(room)], args=args)
                self._decide_once(keys=[self.keys.meta(room)], args=["x:creator", f"{self.node} restored"])
            elif self.on_rules is not None:
                self.on_rules(room, found)

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
        return self.link.attempt(self._history, room)

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
                    events = codec.decode_batch_for_room(entry.payload, room) if entry.remember else []
                except (wire.WireError, codec.CodecError) as exc:
                    self.subscriber.foreign(self.keys.stream(room), exc)
                    continue
                for event, _ in reversed(events):  # newest first, as the page
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
                    self.subscriber.listen_again()
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
        self._send_records()
        self._send_bans()
        self._reload_rules()
        self._read_server_bans(restore=True)

    def _announce_departure(self, rooms: list[str], nick: str) -> None:
        """A dead node's user left ``rooms``: one ``Quit``, seen once by each user who shared one."""
        data, lines = codec.encoded(Quit(nick), rooms)
        hub = self.subscriber.hub
        for room in rooms:
            self.publish(room, data, lines, False)
            if hub is not None and self.subscriber.get(room) is not None:
                hub.receive(room, data, lines, False)
            if self.on_departed is not None:
                self.on_departed(room, nick)
