"""A room: who is in it (an immutable snapshot) and its recent history.

PURE.  ``members`` is a tuple that is replaced, never mutated, so a broadcast
can iterate it without a lock while joins and leaves build the next one.
History lives in this process only, and dies with the room when it empties.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["DEFAULT_ROOM", "Room"]

#: Everyone starts here.
DEFAULT_ROOM = "lobby"

M = TypeVar("M")

#: (seconds since the epoch, the line as relayed, e.g. b"alice: hi\n")
HistoryEntry = tuple[float, bytes]


@dataclass(eq=False)
class Room(Generic[M]):
    """Members and a bounded ring buffer of chat and ``/me`` lines."""

    name: str
    history_size: int = 0
    members: tuple[M, ...] = ()
    history: deque[HistoryEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    def remember(self, when: float, lines: list[bytes]) -> None:
        """Keep ``lines`` (each one relayed line) said at ``when``."""
        if self.history_size:
            self.history.extend([(when, line) for line in lines[-self.history_size :]])
