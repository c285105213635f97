"""What happened in the chat, as values: the one thing a session says to every transport.

PURE.  A session (and the room model under it) decides; what it decided
reaches the recipients as one of these events, never as one protocol's
bytes.  Each kind of recipient has a renderer (the line protocol's
``nick: text`` and ``*** `` notices, IRC's messages for a client's
capabilities) that turns an event into bytes once per broadcast, and the
Redis bus carries events too, so each node renders for its own users.

Names are as their holders typed them; a room is named without its ``#``.
Text is already sanitised (``protocol.sanitise``).  No event carries a
clock reading: the hub stamps a broadcast with its time and passes it to
the renderers with the event (history keeps the pair), so the core reads
no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

__all__ = [
    "Event",
    "Invited",
    "Joined",
    "Kicked",
    "Kind",
    "ModeChanged",
    "NickChanged",
    "Parted",
    "Private",
    "Quit",
    "Renderer",
    "Said",
    "ServerNotice",
    "Tags",
    "TopicSet",
]


class Kind(Enum):
    """How a line of chat was said: plainly, as an action (``/me``, CTCP ACTION) or as a notice."""

    SAY = "say"
    ME = "me"
    NOTICE = "notice"
    #: IRCv3 TAGMSG: tags and no text (``lines`` empty), seen only by IRC clients that take tags.
    TAG = "tag"


#: IRCv3 tags of a message for the IRC clients that take them, unescaped: the server's ``msgid``
#: and the sender's client-only (``+``) tags, ``(("msgid", "a1"), ("+draft/react", "x"))``.
Tags = tuple[tuple[str, str], ...]


@dataclass(slots=True, unsafe_hash=True)
class Said:
    """Lines ``nick`` said to ``room``, in order: one event per batch, so a burst costs one fan-out.

    ``lines`` hold each line's text as UTF-8, without its line ending: the
    hot path keeps what it read as bytes, and a renderer wraps them.

    Not frozen, unlike the other events, only because a frozen dataclass
    costs about 0.6 us more to build and every chat batch builds one:
    treat it as immutable all the same (``dataclasses.replace`` to change).
    """

    room: str
    nick: str
    lines: tuple[bytes, ...]
    kind: Kind = Kind.SAY
    #: Tags of an IRC message (then one line, one ``Said``); the line renderer ignores them.
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class Private:
    """A line from ``nick`` to the user ``to`` alone."""

    nick: str
    to: str
    text: str
    kind: Kind = Kind.SAY
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class Joined:
    """``nick`` entered ``room``."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True)
class Parted:
    """``nick`` left ``room`` (and stays connected)."""

    room: str
    nick: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Quit:
    """``nick`` left the chat; seen once by everyone who shared a room with them."""

    nick: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class NickChanged:
    """The user known as ``old`` is now ``new``; seen once by everyone who shares a room with them."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TopicSet:
    """``nick`` set the topic of ``room`` to ``text`` (empty: cleared)."""

    room: str
    nick: str
    text: str


@dataclass(frozen=True, slots=True)
class ModeChanged:
    """``nick`` changed ``room``'s modes.

    ``changes`` in the order applied, each a sign and letter with its
    argument if the mode takes one: ``(("+o", "bob"), ("+m", None),
    ("+b", "spam*"))``.  The letters are IRC's, which every renderer shares.
    """

    room: str
    nick: str
    changes: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class Kicked:
    """``by`` removed ``nick`` from ``room``."""

    room: str
    nick: str
    by: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Invited:
    """``by`` invited ``nick`` to ``room``: sent to the invitee (and the room's operators)."""

    room: str
    nick: str
    by: str


@dataclass(frozen=True, slots=True)
class ServerNotice:
    """The server's own word to the users it reaches, e.g. that lines from elsewhere may be missing."""

    text: str


Event = (
    Said
    | Private
    | Joined
    | Parted
    | Quit
    | NickChanged
    | TopicSet
    | ModeChanged
    | Kicked
    | Invited
    | ServerNotice
)


class Renderer(Protocol):
    """Turns events into one kind of recipient's bytes (``core.lines.RENDERER``, IRC's per caps).

    One instance is shared by every member of its kind: the hub renders an
    event once per renderer per broadcast.  ``when`` is the hub's stamp
    (seconds since the epoch) for protocols that show it.
    """

    def render(self, event: Event, when: float) -> bytes:
        """Complete lines of the protocol, ready to deliver."""
        ...
