"""The hub: the one place where an effect becomes deliveries.

SHELL.  Every transport hands the hub what a session returned; the hub
decides who receives it, queues it on their outboxes, and applies the
flow-control policy.  Nothing else in the server loops over room members.

Flow control (see the README's "Concurrency", point 5):
- A delivery never blocks: it is a ``put_nowait`` on the recipient's outbox.
- Every recipient is accounted the same way, the sender included for its
  own replies (help text, ``/who``, history replay): one left past half full
  is noted in the sender's ``crowded`` list, and the sender gives it a
  moment to drain (``drain``) before acting on more input.
- One already full when a line arrives gets that moment first (at most
  ``HALF_FULL_WAIT_SECONDS`` per broadcast); still full, it is cut.
- A recipient whose writer has stalled (``Outbox.give_time``) is never
  waited for: it fills up and is cut without delaying anyone.

Rendering: effects carry events (``core.events``); each member has a
``renderer`` shared by every member of its kind, and a broadcast renders
an event once per renderer, so the hot path stays one ``deliver`` per
recipient.  The hub stamps the time once per broadcast.  Nothing here
knows a protocol.

The bus seam: room-wide events are also published on the ``Bus``, encoded
(``core.codec``), and events from elsewhere enter through ``receive`` with
no local sender, to be rendered here and get the same fan-out and flow
control.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import gevent

from ..core import codec, moderation, protocol, records
from ..core.effects import Effect, Removed, Reply, Send, ToRoom, ToShared, ToUser
from ..core.events import Event, Invited, Kicked, Kind, ModeChanged, Renderer, Said, TopicSet
from ..core.names import name_key
from ..core.registry import Registry
from ..core.rooms import Room
from .bus import Bus
from .member import Member
from .metrics import Tally
from .outbox import Outbox

__all__ = ["HALF_FULL_WAIT_SECONDS", "Hub"]

log = logging.getLogger("gevent_chat")

#: Events that change a room's rules, which every server's copy of the room applies.
_RULES = (TopicSet, ModeChanged, Kicked)

#: How long a sender waits, per turn, for a recipient past half full to drain.
HALF_FULL_WAIT_SECONDS = 0.05


class Hub:
    """Fan-out for one server process; ``bus`` links it to the others."""

    def __init__(self, registry: Registry[Member], limit: int, tally: Tally, bus: Bus) -> None:
        self.registry = registry
        self.limit = limit
        self.tally = tally
        self.bus = bus
        self._inbound: list[Outbox] = []  # ``crowded`` of deliveries from the bus
        bus.attach(self)

    def apply(self, sender: Member, effects: Sequence[Effect]) -> None:
        """Carry out ``effects`` of ``sender``'s session, in order."""
        crowded = sender.crowded
        for effect in effects:
            if isinstance(effect, ToRoom):
                room, event = effect.room, effect.event
                when = time.time()
                said = False
                kept = True
                if isinstance(event, Said):
                    said = kept = event.kind is not Kind.TAG  # a TAGMSG: neither remembered nor published
                    if said:
                        room.remember(when, event)
                elif self.registry.directory is not None:  # before it is published: see ``_record``
                    self._record(room, event)
                if effect.members is room.members:  # the usual case: the room's grouping serves
                    self.broadcast(room, event, when, crowded, sender)
                else:  # the room changed since the effect was made
                    self.fan_out(effect.members, event, when, crowded, sender)
                if kept and self.bus.has_peers():  # a server alone encodes nothing
                    data, lines = codec.encoded(event)
                    self.bus.publish(room.name, data, lines, said)
            elif isinstance(effect, Reply):
                self.send(sender, protocol.notice(effect.text), 1, crowded)
            elif isinstance(effect, Send):
                self.send(effect.member or sender, effect.data, effect.lines, crowded)
            elif isinstance(effect, ToShared):
                self._to_shared(effect, crowded, sender)
            elif isinstance(effect, ToUser):
                if isinstance(effect.event, Invited) and self.registry.directory is not None:
                    invited = self.registry.room(effect.event.room)
                    if invited is not None:
                        self._record(invited, effect.event)
                payload = effect.member.renderer.render(effect.event, time.time())
                if payload:  # empty: a TAGMSG for a client that takes no tags
                    self.send(effect.member, payload, payload.count(b"\n"), crowded)
            else:
                sender.act(effect)

    def _to_shared(self, effect: ToShared, crowded: list[Outbox], sender: Member) -> None:
        """A ``Quit`` or ``NickChanged``: once to each local user sharing a room; to each room elsewhere."""
        when = time.time()
        recipients = [m for m in effect.members if m is not sender]
        self.fan_out(recipients, effect.event, when, crowded)
        names = [room.name for room in effect.rooms]
        if not names:
            return
        if self.registry.directory is not None:
            for room in effect.rooms:
                self._record(room, effect.event)
        if not self.bus.has_peers():
            return
        data, lines = codec.encoded(effect.event, names)
        for name in names:
            self.bus.publish(name, data, lines, False)

    def _record(self, room: Room[Member], event: Event) -> None:
        """Keep what ``event``, decided here, changed in ``room``'s rules for every server.

        Written (one round trip) before the event is published, so a server
        that reads the rules and then follows the room misses nothing.
        """
        changes = records.changes(event, room.state)
        if changes and self.registry.directory is not None:
            self.registry.directory.record(room.name, changes)

    def broadcast(
        self,
        room: Room[Member],
        event: Event,
        when: float,
        crowded: list[Outbox],
        sender: Outbox | None = None,
    ) -> None:
        """Deliver ``event`` (said at ``when``) to everyone in ``room`` but ``sender``.

        The room's members grouped by renderer are kept with the members
        snapshot they came from (``Room.fanout``), and built again when the
        snapshot changes or any member's renderer does.
        """
        members = room.members
        changes = Member.renderer_changes
        cached = room.fanout
        if cached is None or cached[0] is not members or cached[1] != changes:
            cached = room.fanout = (members, changes, _by_renderer(members))
        for renderer, group in cached[2]:
            data = renderer.render(event, when)
            if data:  # empty: not for this kind of client (a TAGMSG for line users)
                self._deliver(group, data, crowded, sender)

    def fan_out(
        self,
        members: Iterable[Member],
        event: Event,
        when: float,
        crowded: list[Outbox],
        sender: Outbox | None = None,
    ) -> None:
        """Deliver ``event`` to ``members`` but ``sender``: rendered once per renderer among them."""
        for renderer, group in _by_renderer(members):
            data = renderer.render(event, when)
            if data:
                self._deliver(group, data, crowded, sender)

    def _deliver(
        self, members: Sequence[Outbox], payload: bytes, crowded: list[Outbox], sender: Outbox | None
    ) -> None:
        """Queue ``payload`` for each of ``members`` but ``sender``, noting who is crowded.

        Several readers woken in one loop turn may each add half an outbox
        before a recipient's writer runs, so one already full gets a moment
        first (at most ``HALF_FULL_WAIT_SECONDS`` per broadcast): only a
        client that really stopped reading is cut.
        """
        lines = payload.count(b"\n")
        half, limit = self.limit >> 1, self.limit
        deadline = 0.0  # set when the first full recipient is waited for
        skipped = 0  # the sender, if it is among ``members``
        # The hot path: send()'s steps inlined, a call per member costs.
        for member in members:
            if member is sender:
                skipped = 1
            else:
                if member.pending >= limit and not member.closing:
                    deadline = deadline or time.monotonic() + HALF_FULL_WAIT_SECONDS
                    member.give_time(max(0.0, deadline - time.monotonic()))
                member.deliver(payload, lines)
                if member.pending > half:
                    crowded.append(member)
        self.tally.deliveries += (len(members) - skipped) * lines

    def send(self, member: Outbox, payload: bytes, lines: int, crowded: list[Outbox]) -> None:
        """Deliver to one client (the sender too) as ``broadcast`` does."""
        if member.pending >= self.limit and not member.closing:
            member.give_time(HALF_FULL_WAIT_SECONDS)
        member.deliver(payload, lines)
        if member.pending > self.limit >> 1:
            crowded.append(member)

    def drain(self, crowded: list[Outbox]) -> None:
        """Let the writers this turn woke run, and wait (bounded) for the crowded.

        A client that keeps reading must never be cut just because another one
        sends a burst faster than one writer turn: if a recipient's outbox is
        past half full, give it a moment to drain.  One that does not read
        fills up and is cut as usual, so this never stalls on it for long.
        """
        gevent.sleep(0)  # run the writer greenlets this turn woke
        if not crowded:
            return
        half = self.limit >> 1
        deadline = time.monotonic() + HALF_FULL_WAIT_SECONDS
        for member in dict.fromkeys(crowded):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if member.pending > half and not member.closing:
                member.give_time(remaining)
        crowded.clear()

    # -- the bus seam --------------------------------------------------------------

    def receive(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        """Encoded events from elsewhere (one, or a node's loop turn of them): render them
        for this process's members of ``room``, in order."""
        local = self.registry.room(room)
        if local is None:
            return  # nobody here is in that room
        try:
            events = codec.decode_batch_for_room(payload, room)
        except codec.CodecError as exc:
            self.tally.rejected_events += 1
            log.warning("dropped an event for #%s from another server: %s", room, exc)
            return
        when = time.time()
        for event, rooms in events:
            self._receive_one(local, event, rooms, when, remember)
        if self._inbound:
            self.drain(self._inbound)

    def _receive_one(
        self, local: Room[Member], event: Event, rooms: tuple[str, ...], when: float, remember: bool
    ) -> None:
        if remember and type(event) is Said:
            local.remember(when, event)
        # A room's rules changed elsewhere: this copy follows, in order with the lines.
        after = moderation.apply_remote(self.registry, local, event, when) if type(event) in _RULES else []
        if rooms:  # Quit, NickChanged: sent once per room, seen once per user
            via, listed, rooms_of = name_key(local.name), [name_key(r) for r in rooms], self.registry.rooms_of
            members = [
                m
                for m in local.members
                if m.nick is not None
                and codec.first_shared(listed, {name_key(r.name) for r in rooms_of(m.nick)}, via)
            ]
            self.fan_out(members, event, when, self._inbound)
        else:
            self.broadcast(local, event, when, self._inbound)
        for effect in after:
            if isinstance(effect, Removed):  # a member here was kicked there
                effect.member.kicked(effect.event)
            elif isinstance(effect, ToRoom):  # a ban set there kicked a member here
                self.broadcast(effect.room, effect.event, when, self._inbound)
                data, lines = codec.encoded(effect.event)
                self.bus.publish(effect.room.name, data, lines, False)

    def receive_private(self, nick: str, payload: bytes) -> None:
        """An encoded private message from elsewhere for ``nick``, if that user is here."""
        member = self.registry.get(nick)
        if member is None:
            return  # gone meanwhile: private messages are at most once
        try:
            event = codec.decode_private(payload, nick)
        except codec.CodecError as exc:
            self.tally.rejected_events += 1
            log.warning("dropped a private message from another server: %s", exc)
            return
        data = member.renderer.render(event, time.time())
        self.send(member, data, data.count(b"\n"), self._inbound)
        if self._inbound:
            self.drain(self._inbound)


def _by_renderer(members: Iterable[Member]) -> tuple[tuple[Renderer, tuple[Member, ...]], ...]:
    """``members`` grouped by renderer, in order of first appearance."""
    groups: dict[Renderer, list[Member]] = {}
    for member in members:
        groups.setdefault(member.renderer, []).append(member)
    return tuple((renderer, tuple(group)) for renderer, group in groups.items())
