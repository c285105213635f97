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

The bus seam: room-wide deliveries are also published on the ``Bus``, and
deliveries from elsewhere enter through ``receive`` with no local sender,
to get the same fan-out and the same flow control.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import gevent

from ..core import protocol
from ..core.effects import Effect, Reply, Say, Send, ToRoom
from ..core.registry import Registry
from ..core.rooms import Room
from .bus import Bus
from .member import Member
from .metrics import Tally
from .outbox import Outbox

__all__ = ["HALF_FULL_WAIT_SECONDS", "Hub"]

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
            if isinstance(effect, Say):
                room, said = effect.room, effect.said
                room.remember(time.time(), said)
                payload = said[0] if len(said) == 1 else b"".join(said)
                self.broadcast(room, payload, len(said), crowded, sender)
                self.bus.publish(room.name, payload, len(said), True)
            elif isinstance(effect, Reply):
                self.send(sender, protocol.notice(effect.text), 1, crowded)
            elif isinstance(effect, Send):
                self.send(effect.member or sender, effect.data, effect.lines, crowded)
            elif isinstance(effect, ToRoom):
                self.broadcast(effect.room, effect.data, 1, crowded, sender)
                self.bus.publish(effect.room.name, effect.data, 1, False)
            else:
                sender.act(effect)

    def broadcast(
        self,
        room: Room[Member],
        payload: bytes,
        lines: int,
        crowded: list[Outbox],
        sender: Outbox | None = None,
    ) -> None:
        """Deliver to everyone in ``room`` but ``sender``, noting who is crowded.

        Several readers woken in one loop turn may each add half an outbox
        before a recipient's writer runs, so one already full gets a moment
        first (at most ``HALF_FULL_WAIT_SECONDS`` per broadcast): only a
        client that really stopped reading is cut.
        """
        half, limit = self.limit >> 1, self.limit
        deadline = 0.0  # set when the first full recipient is waited for
        members = room.members
        # A room the sender is not in (left, or moved out of) counts all.
        self.tally.deliveries += (len(members) - (sender in members)) * lines
        # The hot path: send()'s steps inlined, a call per member costs.
        for member in members:
            if member is not sender:
                if member.pending >= limit and not member.closing:
                    deadline = deadline or time.monotonic() + HALF_FULL_WAIT_SECONDS
                    member.give_time(max(0.0, deadline - time.monotonic()))
                member.deliver(payload, lines)
                if member.pending > half:
                    crowded.append(member)

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
        """A delivery from elsewhere: fan it out to this process's members of ``room``."""
        local = self.registry.room(room)
        if local is None:
            return  # nobody here is in that room
        if remember:
            local.remember(time.time(), [line + b"\n" for line in payload.split(b"\n")[:-1]])
        self.broadcast(local, payload, lines, self._inbound)
        if self._inbound:
            self.drain(self._inbound)

    def receive_private(self, nick: str, line: bytes) -> None:
        """A private message from elsewhere for ``nick``, if that user is here."""
        member = self.registry.get(nick)
        if member is None:
            return  # gone meanwhile: private messages are at most once
        self.send(member, line, 1, self._inbound)
        if self._inbound:
            self.drain(self._inbound)
