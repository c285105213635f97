"""A room: who is in it (an immutable snapshot) and its recent history.

PURE.  ``members`` is a tuple that is replaced, never mutated, so a broadcast
can iterate it without a lock while joins and leaves build the next one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["DEFAULT_ROOM", "HistoryEntry", "Room"]

#: Everyone starts here.
DEFAULT_ROOM = "lobby"

M = TypeVar("M")


@dataclass(frozen=True)
class HistoryEntry:
    """One chat or ``/me`` line as it was said, for replay to later joiners."""

    when: float  # seconds since the epoch, supplied by the shell's clock
    nick: str
    text: str
    action: bool = False


@dataclass(eq=False)
class Room(Generic[M]):
    """Members and a bounded ring buffer of history (lives in this process only)."""

    name: str
    history_size: int = 0
    members: tuple[M, ...] = ()
    history: deque[HistoryEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    def remember(self, entry: HistoryEntry) -> None:
        if self.history_size:
            self.history.append(entry)
