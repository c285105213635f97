"""What a user can do in the chat, whatever protocol they speak: say, join, part, rename, quit, message.

PURE.  The line protocol's ``/commands`` and IRC's handlers both call these
and differ only in how they answer their caller: each returns the effects
other users see (events, which the hub renders per kind of recipient) and
raises a typed ``ClientError`` that carries what an IRC numeric needs
(``NoSuchNick``, ``NoSuchRoom``, ``NotInRoom``, ``TooManyRooms``,
``CannotJoin``, ``CannotSend``).  The caller puts its own replies first.

The room model plugs its rules in through hooks: ``JoinCheck`` (key, ban,
invite, limit) and ``SendCheck`` (moderated, banned), called before
anything changes; each raises ``CannotJoin`` or ``CannotSend`` to refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .effects import Effect, ToRoom, ToShared, ToUser
from .errors import ClientError, NoSuchNick, NoSuchRoom
from .events import Joined, Kind, NickChanged, Parted, Private, Quit, Said
from .names import is_valid_nick, validate_nick, validate_room
from .protocol import sanitise
from .registry import Registry
from .rooms import Room

__all__ = [
    "AlreadyInRoom",
    "JoinCheck",
    "SendCheck",
    "Unreachable",
    "join",
    "move",
    "part",
    "private",
    "quit",
    "rename",
    "say",
    "say_to",
]

M = TypeVar("M")

#: ``check(room, nick)`` before ``nick`` joins ``room`` (None: a new room); raises ``CannotJoin``.
JoinCheck = Callable[[Room[Any] | None, str], None]
#: ``check(room, nick)`` before ``nick`` speaks in ``room``; raises ``CannotSend``.
SendCheck = Callable[[Room[Any], str], None]


class AlreadyInRoom(ClientError):
    """The caller is in ``room`` already (IRC ignores such a JOIN; the line protocol says so)."""

    def __init__(self, room: str) -> None:
        super().__init__(f"you are already in #{room}")
        self.room = room


class Unreachable(ClientError):
    """``nick`` may be on another server, which cannot be reached now."""

    def __init__(self, nick: str) -> None:
        super().__init__(f"cannot reach {nick} now: the other servers are out of reach")
        self.nick = nick


def _spelled(registry: Registry[Any], name: str) -> str:
    room = registry.room(name)
    return name if room is None else room.name


def say(room: Room[Any], nick: str, lines: Sequence[bytes], kind: Kind = Kind.SAY) -> ToRoom:
    """``nick``'s sanitised ``lines`` (UTF-8, no line ending) to everyone else in ``room``.

    The hot path: no check, for a caller known to be in ``room``.
    """
    return ToRoom(room, Said(room.name, nick, tuple(lines), kind))


def say_to(
    registry: Registry[Any],
    nick: str,
    name: str,
    lines: Sequence[bytes],
    kind: Kind = Kind.SAY,
    check: SendCheck | None = None,
) -> ToRoom:
    """``say`` to the room called ``name``: raises ``NoSuchRoom`` or ``CannotSend``."""
    name = name.removeprefix("#")
    room = registry.room(name)
    if room is None:
        raise NoSuchRoom(sanitise(name))
    if check is not None:
        check(room, nick)
    return say(room, nick, lines, kind)


def join(
    registry: Registry[M], nick: str, name: str, check: JoinCheck | None = None
) -> tuple[Room[M], list[Effect]]:
    """Put ``nick`` in the room named ``name`` (created if new) besides its others.

    Raises ``ClientError`` for a bad name, ``AlreadyInRoom``,
    ``TooManyRooms``, or what ``check`` raises.
    """
    name = validate_room(name)
    if registry.is_in(nick, name):
        raise AlreadyInRoom(_spelled(registry, name))
    if check is not None:
        check(registry.room(name), nick)
    room = registry.join(nick, name)
    return room, [ToRoom(room, Joined(room.name, nick))]


def move(
    registry: Registry[M], nick: str, name: str, check: JoinCheck | None = None
) -> tuple[Room[M], Room[M], list[Effect]]:
    """Move ``nick`` from its (first) room to the room ``name``: the line protocol's ``/join``.

    Returns (old, new, what the rooms see); raises as ``join`` does.
    """
    name = validate_room(name)
    if registry.is_in(nick, name):
        raise AlreadyInRoom(_spelled(registry, name))
    if check is not None:
        check(registry.room(name), nick)
    old, new = registry.move(nick, name)
    return old, new, [ToRoom(old, Parted(old.name, nick)), ToRoom(new, Joined(new.name, nick))]


def part(registry: Registry[Any], nick: str, name: str, reason: str | None = None) -> list[Effect]:
    """Take ``nick`` out of the room ``name``; raises ``NoSuchRoom`` or ``NotInRoom``."""
    name = name.removeprefix("#")
    if registry.room(name) is None:
        raise NoSuchRoom(sanitise(name))
    room = registry.part(nick, name)
    return [ToRoom(room, Parted(room.name, nick, reason))]


def rename(registry: Registry[Any], old: str, new: str) -> list[Effect]:
    """Give ``old`` the nick ``new`` (validated); raises ``NickTaken`` or ``NickInvalid``."""
    new = validate_nick(new)
    rooms = registry.rename(old, new)
    return [ToShared(rooms, NickChanged(old, new))]


def quit(registry: Registry[Any], nick: str, reason: str | None = None) -> list[Effect]:
    """Forget ``nick``; everyone who shared a room with it hears it once."""
    rooms = registry.remove(nick)
    if not rooms:
        return []
    return [ToShared(rooms, Quit(nick, reason))]


def private(
    registry: Registry[Any], nick: str, target: str, text: str, kind: Kind = Kind.SAY
) -> tuple[str, list[Effect]]:
    """``text`` from ``nick`` to ``target`` alone, here or on another server.

    Returns the target's nick as spelled by its holder and the effects;
    raises ``NoSuchNick`` or ``Unreachable``.  ``text`` is sanitised here.
    """
    text = sanitise(text)
    member = registry.get(target)
    if member is not None:
        spelled = registry.nick_of(target) or target
        return spelled, [ToUser(member, Private(nick, spelled, text, kind))]
    if not is_valid_nick(target):
        raise NoSuchNick(sanitise(target))
    sent = registry.private(target, Private(nick, target, text, kind))
    if sent is None:
        raise Unreachable(target)
    if not sent:
        raise NoSuchNick(target)
    return target, []
