"""A room: who is in it (an immutable snapshot) and its recent chat.

PURE.  ``members`` is a tuple that is replaced, never mutated, so a broadcast
can iterate it without a lock while joins and leaves build the next one.
History keeps what was said as events with the time the hub stamped, so
each kind of recipient renders it its own way on replay; it lives in this
process only, and dies with the room when it empties.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .events import Said
from .names import name_key
from .roomstate import RoomState

__all__ = ["DEFAULT_ROOM", "HistoryEntry", "Room"]

#: Everyone starts here.
DEFAULT_ROOM = "lobby"

M = TypeVar("M")

#: (seconds since the epoch, what was said then)
HistoryEntry = tuple[float, Said]


@dataclass(eq=False)
class Room(Generic[M]):
    """Members and the last ``history_size`` lines of chat and ``/me``."""

    name: str
    history_size: int = 0
    members: tuple[M, ...] = ()
    history: deque[HistoryEntry] = field(init=False)
    #: Lines in ``history`` (an entry may hold several).
    kept: int = field(init=False, default=0)
    #: Its rules (topic, operators, modes, bans...), replaced whole on every change.
    state: RoomState = field(init=False)
    #: When it was created (seconds since the epoch), if a caller with a clock saw it
    #: created; IRC shows it (RPL_CREATIONTIME).
    created: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.history = deque()
        self.state = RoomState(self.name, open=name_key(self.name) == name_key(DEFAULT_ROOM))

    def remember(self, when: float, said: Said) -> None:
        """Keep ``said`` at ``when``, forgetting the oldest lines past ``history_size``."""
        size = self.history_size
        if not size:
            return
        history = self.history
        history.append((when, said))
        self.kept += len(said.lines)
        excess = self.kept - size
        while excess > 0:
            first_when, first = history[0]
            n = len(first.lines)
            if n <= excess:
                history.popleft()
                self.kept -= n
                excess -= n
            else:
                history[0] = (first_when, dataclasses.replace(first, lines=first.lines[excess:]))
                self.kept -= excess
                excess = 0
