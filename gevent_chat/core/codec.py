"""Events as the bus carries them between server processes: encode, and decode with validation.

PURE.  A hub publishes what happened, not what one protocol shows, and
every node renders it for its own users.  One published payload is one
event, as UTF-8 text in complete lines (so the Redis layer's own checks,
``core.wire``, still hold: complete, sanitised lines).  The first line is a
header of space-separated fields, starting with the format version::

    ev1 said <kind> <room> <nick>\\n<line>\\n<line>\\n...
    ev1 join <room> <nick>\\n
    ev1 part <room> <nick> <0|1>\\n[<reason>\\n]
    ev1 quit <nick> <room,room,...> <0|1>\\n[<reason>\\n]
    ev1 nick <old> <new> <room,room,...>\\n
    ev1 topic <room> <nick>\\n<text>\\n
    ev1 mode <room> <nick>\\n<+x>[ <argument>]\\n...
    ev1 kick <room> <nick> <by> <0|1>\\n[<reason>\\n]
    ev1 invite <room> <nick> <by>\\n
    ev1 note\\n<text>\\n
    ev1 msg <kind> <nick> <to> <text>\\n

``0|1`` says whether a reason line follows.  ``quit`` and ``nick`` list the
rooms the user was in: a node that gets the event once per room delivers
it, per local user, only from the first listed room that user is in, so
each sees it once (``first_shared``).  A private message is one line, as
``core.wire`` carries it.

A chat batch stays cheap: encoding is one join, decoding is one split and
one regular-expression check of the whole body when it is printable ASCII.
Everything decoded is validated (names by the nickname rules, text
unchanged by the sanitiser); anything else raises ``CodecError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import ChatError
from .events import (
    Event,
    Invited,
    Joined,
    Kicked,
    Kind,
    ModeChanged,
    NickChanged,
    Parted,
    Private,
    Quit,
    Said,
    ServerNotice,
    TopicSet,
)
from .names import is_valid_nick, name_key
from .protocol import is_clean_ascii, sanitise

__all__ = [
    "MAX_BYTES",
    "VERSION",
    "CodecError",
    "decode",
    "decode_for_room",
    "decode_private",
    "encode",
    "first_shared",
    "line_count",
]

#: First field of every encoded event: the format's version.
VERSION = b"ev1"

_KINDS = {kind.value.encode(): kind for kind in Kind}
_MODE = re.compile(r"[+-][A-Za-z]")
#: Largest encoded event accepted.
MAX_BYTES = 1 << 20


class CodecError(ChatError):
    """Bytes that are not a valid encoded event."""


def _b(text: str) -> bytes:
    return text.encode()


def _rooms(rooms: Sequence[str]) -> bytes:
    if not rooms:
        raise ValueError("a Quit or NickChanged goes with the rooms the user was in")
    return ",".join(rooms).encode()


def _reason(head: bytes, reason: str | None) -> bytes:
    if reason is None:
        return head + b" 0\n"
    return head + b" 1\n" + reason.encode() + b"\n"


def encode(event: Event, rooms: Sequence[str] = ()) -> bytes:
    """``event`` as the bus carries it; ``rooms``: the user's rooms, for ``Quit`` and ``NickChanged``."""
    if type(event) is Said:
        return b"ev1 said %s %s %s\n%s\n" % (
            _b(event.kind.value),
            _b(event.room),
            _b(event.nick),
            b"\n".join(event.lines),
        )
    if isinstance(event, Private):
        return b"ev1 msg %s %s %s %s\n" % (_b(event.kind.value), _b(event.nick), _b(event.to), _b(event.text))
    if isinstance(event, Joined):
        return b"ev1 join %s %s\n" % (_b(event.room), _b(event.nick))
    if isinstance(event, Parted):
        return _reason(b"ev1 part %s %s" % (_b(event.room), _b(event.nick)), event.reason)
    if isinstance(event, Quit):
        return _reason(b"ev1 quit %s %s" % (_b(event.nick), _rooms(rooms)), event.reason)
    if isinstance(event, NickChanged):
        return b"ev1 nick %s %s %s\n" % (_b(event.old), _b(event.new), _rooms(rooms))
    if isinstance(event, TopicSet):
        return b"ev1 topic %s %s\n%s\n" % (_b(event.room), _b(event.nick), _b(event.text))
    if isinstance(event, ModeChanged):
        changes = "".join(mode + ("" if arg is None else f" {arg}") + "\n" for mode, arg in event.changes)
        return b"ev1 mode %s %s\n%s" % (_b(event.room), _b(event.nick), _b(changes))
    if isinstance(event, Kicked):
        head = b"ev1 kick %s %s %s" % (_b(event.room), _b(event.nick), _b(event.by))
        return _reason(head, event.reason)
    if isinstance(event, Invited):
        return b"ev1 invite %s %s %s\n" % (_b(event.room), _b(event.nick), _b(event.by))
    if isinstance(event, ServerNotice):
        return b"ev1 note\n%s\n" % _b(event.text)
    raise TypeError(f"not an event: {event!r}")


def line_count(data: bytes) -> int:
    """How many lines an encoded event is."""
    return data.count(b"\n")


# -- decoding ------------------------------------------------------------------------


def _name(raw: bytes, what: str) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"{what} is not UTF-8") from exc
    if not is_valid_nick(name):
        raise CodecError(f"bad {what}: {raw[:40]!r}")
    return name


def _names(raw: bytes, what: str) -> tuple[str, ...]:
    return tuple(_name(part, what) for part in raw.split(b","))


def _text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError("text is not UTF-8") from exc
    if "\n" in text or sanitise(text) != text:
        raise CodecError("text has control or escape characters")
    return text


def _kind(raw: bytes) -> Kind:
    kind = _KINDS.get(raw)
    if kind is None:
        raise CodecError(f"bad kind: {raw[:40]!r}")
    return kind


def _fields(head: bytes, n: int) -> list[bytes]:
    fields = head.split(b" ")
    if len(fields) != n:
        raise CodecError(f"header has {len(fields)} fields, not {n}")
    return fields


def _optional(flag: bytes, body: list[bytes]) -> str | None:
    """The reason line a ``0|1`` flag announces."""
    if flag == b"0" and not body:
        return None
    if flag == b"1" and len(body) == 1:
        return _text(body[0])
    raise CodecError("reason does not match its flag")


def _one(body: list[bytes]) -> str:
    if len(body) != 1:
        raise CodecError(f"{len(body)} text lines, not 1")
    return _text(body[0])


def _said(fields: list[bytes], body: bytes) -> Said:
    kind, room, nick = _kind(fields[0]), _name(fields[1], "room"), _name(fields[2], "nick")
    if not body:
        raise CodecError("chat without lines")
    lines = tuple(body[:-1].split(b"\n"))
    if not is_clean_ascii(body):
        for line in lines:
            _text(line)
    return Said(room, nick, lines, kind)


def decode(data: bytes) -> tuple[Event, tuple[str, ...]]:
    """The event in ``data`` and the rooms it lists (``Quit``, ``NickChanged``); raises ``CodecError``."""
    if len(data) > MAX_BYTES or not data.endswith(b"\n"):
        raise CodecError("not complete lines of a bounded size")
    head, _, body = data.partition(b"\n")
    version, _, verb_rest = head.partition(b" ")
    if version != VERSION:
        raise CodecError(f"not an {VERSION.decode()} event: {data[:40]!r}")
    verb, _, rest = verb_rest.partition(b" ")
    if verb == b"said":
        return _said(_fields(rest, 3), body), ()
    if verb == b"msg":
        if body:
            raise CodecError("a private message is one line")
        f = rest.split(b" ", 3)
        if len(f) != 4:
            raise CodecError("private message header too short")
        return Private(_name(f[1], "nick"), _name(f[2], "nick"), _text(f[3]), _kind(f[0])), ()
    lines = body[:-1].split(b"\n") if body else []
    if verb == b"join":
        f = _fields(rest, 2)
        if lines:
            raise CodecError("join has no text")
        return Joined(_name(f[0], "room"), _name(f[1], "nick")), ()
    if verb == b"part":
        f = _fields(rest, 3)
        return Parted(_name(f[0], "room"), _name(f[1], "nick"), _optional(f[2], lines)), ()
    if verb == b"quit":
        f = _fields(rest, 3)
        return Quit(_name(f[0], "nick"), _optional(f[2], lines)), _names(f[1], "room")
    if verb == b"nick":
        f = _fields(rest, 3)
        if lines:
            raise CodecError("nick has no text")
        return NickChanged(_name(f[0], "nick"), _name(f[1], "nick")), _names(f[2], "room")
    if verb == b"topic":
        f = _fields(rest, 2)
        return TopicSet(_name(f[0], "room"), _name(f[1], "nick"), _one(lines)), ()
    if verb == b"mode":
        f = _fields(rest, 2)
        return ModeChanged(_name(f[0], "room"), _name(f[1], "nick"), _changes(lines)), ()
    if verb == b"kick":
        f = _fields(rest, 4)
        by, reason = _name(f[2], "nick"), _optional(f[3], lines)
        return Kicked(_name(f[0], "room"), _name(f[1], "nick"), by, reason), ()
    if verb == b"invite":
        f = _fields(rest, 3)
        if lines:
            raise CodecError("invite has no text")
        return Invited(_name(f[0], "room"), _name(f[1], "nick"), _name(f[2], "nick")), ()
    if verb == b"note":
        if rest:
            raise CodecError("note has no header fields")
        return ServerNotice(_one(lines)), ()
    raise CodecError(f"unknown event: {verb[:20]!r}")


def decode_for_room(data: bytes, room: str) -> tuple[Event, tuple[str, ...]]:
    """``decode`` an event that came on ``room``'s channel; raises ``CodecError``.

    A room's event must name that room (or list it: ``Quit``,
    ``NickChanged``), and a private message never comes this way.
    """
    event, rooms = decode(data)
    key = name_key(room)
    if isinstance(event, Private):
        raise CodecError("a private message on a room's channel")
    if isinstance(event, Quit | NickChanged):
        if key not in {name_key(r) for r in rooms}:
            raise CodecError(f"an event for other rooms on #{room}'s channel")
    elif not isinstance(event, ServerNotice) and name_key(event.room) != key:
        raise CodecError(f"an event for #{event.room} on #{room}'s channel")
    return event, rooms


def decode_private(data: bytes, nick: str) -> Private:
    """``decode`` a private message for ``nick``; raises ``CodecError``."""
    event, _ = decode(data)
    if not isinstance(event, Private) or name_key(event.to) != name_key(nick):
        raise CodecError(f"not a private message for {nick}")
    return event


def _changes(lines: list[bytes]) -> tuple[tuple[str, str | None], ...]:
    if not lines:
        raise CodecError("mode change without changes")
    changes: list[tuple[str, str | None]] = []
    for line in lines:
        text = _text(line)
        mode, sep, arg = text.partition(" ")
        if _MODE.fullmatch(mode) is None:
            raise CodecError(f"bad mode: {mode[:10]!r}")
        changes.append((mode, arg if sep else None))
    return tuple(changes)


def first_shared(rooms: Sequence[str], room_keys_of_member: set[str], via: str) -> bool:
    """True if a user in ``room_keys_of_member`` (folded) should get a ``Quit``/``NickChanged`` via ``via``.

    ``rooms`` (folded) are the rooms the event lists: deliver from the first
    of them the user is in, so one event sent once per room reaches each
    user once.
    """
    for room in rooms:
        if room in room_keys_of_member:
            return room == via
    return False
