"""What a session asks the shell to do: plain values, no I/O.

PURE.  A ``Session`` (and the command handlers it runs) returns a list of
these for every chunk of lines it is given; the hub carries out the ones
that deliver bytes (``Reply``, ``Send``, ``Say``, ``ToRoom``), in order, and
hands the rest to the connection they belong to.  So registration, chat and
commands all reach the shell as one kind of thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rooms import Room

__all__ = [
    "Close",
    "Effect",
    "Moved",
    "Pause",
    "Registered",
    "Renamed",
    "Reply",
    "Say",
    "Send",
    "ToRoom",
]


@dataclass(frozen=True)
class Reply:
    """A ``*** text`` line to the caller."""

    text: str


@dataclass(frozen=True)
class Send:
    """Raw line(s) to one member (the caller when ``member`` is None)."""

    data: bytes
    member: Any = None
    #: Complete lines in ``data``; 0 for a prompt, which has no newline.
    lines: int = 1


@dataclass(frozen=True)
class Say:
    """Chat or ``/me`` lines to everyone else in ``room``, kept in its history."""

    room: Room[Any]
    #: Each one relayed line, ``\\n`` included.
    said: list[bytes]


@dataclass(frozen=True)
class ToRoom:
    """A notice line to everyone in ``room`` except the caller; not remembered."""

    room: Room[Any]
    data: bytes


@dataclass(frozen=True)
class Registered:
    """The caller chose ``nick`` and is now a user (the registration window ends)."""

    nick: str


@dataclass(frozen=True)
class Renamed:
    """The caller, known as ``old``, now goes by ``nick``."""

    nick: str
    old: str = ""


@dataclass(frozen=True)
class Moved:
    """The caller is now in ``room``."""

    room: Room[Any]


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before acting on what follows (a wrong password's delay)."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """End the caller's connection after what is queued; ``reason`` for the room.

    ``refusal`` names why the gate refused the connection (a metric label),
    or is None for an ordinary end such as ``/quit``.
    """

    reason: str | None
    refusal: str | None = None


Effect = Reply | Send | Say | ToRoom | Registered | Renamed | Moved | Pause | Close
