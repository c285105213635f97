"""What a session asks the shell to do: plain values, no I/O.

PURE.  A ``Session`` (and the command handlers it runs) returns a list of
these for every chunk of lines it is given; the hub carries out the ones
that deliver (``Reply``, ``Send``, ``ToRoom``, ``ToShared``, ``ToUser``), in
order, and hands the rest to the connection they belong to.  So
registration, chat and commands all reach the shell as one kind of thing.

What other users see is an ``Event`` (``core.events``), which the hub
renders once per kind of recipient; ``Reply`` and ``Send`` are the caller's
own protocol's bytes (``*** `` replies, prompts, history replay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import Event, Kicked
from .rooms import Room

__all__ = [
    "Authenticate",
    "Close",
    "Disconnect",
    "Effect",
    "Moved",
    "Pause",
    "Registered",
    "Removed",
    "Renamed",
    "Reply",
    "Send",
    "ToRoom",
    "ToShared",
    "ToUser",
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


@dataclass(frozen=True, slots=True)
class ToRoom:
    """``event`` to everyone in ``room`` but the caller; a ``Said`` is kept in the room's history.

    The recipients are the room's members when the effect is made, not when
    the hub carries it out: a session acting on several lines at once (a
    KICK then another) decides each one on the room as it was then.
    """

    room: Room[Any]
    event: Event
    members: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", self.room.members)


@dataclass(frozen=True, slots=True)
class ToShared:
    """``event`` (a ``Quit`` or ``NickChanged``) once to everyone but the caller in any of ``rooms``."""

    rooms: tuple[Room[Any], ...]
    event: Event
    #: Everyone in ``rooms`` when the effect is made, once each (see ``ToRoom``).
    members: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(dict.fromkeys(m for r in self.rooms for m in r.members)))


@dataclass(frozen=True, slots=True)
class ToUser:
    """``event`` (a ``Private``, an ``Invited``) to one local ``member``."""

    member: Any
    event: Event


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


@dataclass(frozen=True, slots=True)
class Removed:
    """``member`` was kicked (``event``): their own session hears it and acts (a line user goes to the lobby).

    The room, which no longer holds them, is told by a ``ToRoom`` of the same event.
    """

    member: Any
    event: Kicked


@dataclass(frozen=True, slots=True)
class Disconnect:
    """End ``member``'s connection (``/kill``, ``/gban``): ``text`` to them, ``reason`` to their rooms."""

    member: Any
    text: str
    reason: str


@dataclass(frozen=True)
class Authenticate:
    """Check ``/oper NAME PASSWORD`` off the event loop, within the address's failure budget.

    The shell answers through ``Session.opered``.  The password is never shown.
    """

    name: str
    password: str = field(repr=False)


Effect = (
    Reply
    | Send
    | ToRoom
    | ToShared
    | ToUser
    | Registered
    | Renamed
    | Moved
    | Pause
    | Close
    | Removed
    | Disconnect
    | Authenticate
)
