"""What a user can do in the chat, whatever protocol they speak: say, join, part, rename, quit, message.

PURE.  The line protocol's ``/commands`` and IRC's handlers both call these
and differ only in how they answer their caller: each returns the effects
other users see (events, which the hub renders per kind of recipient) and
raises a typed ``ClientError`` that carries what an IRC numeric needs
(``NoSuchNick``, ``NoSuchRoom``, ``NotInRoom``, ``TooManyRooms``,
``CannotJoin``, ``CannotSend``).  The caller puts its own replies first.

Every room's own rules (``Room.state``, ``core.roomstate``) are applied
here, for every protocol: ``join`` and ``move`` refuse a ban, ``+i``, a bad
key or a full room (``CannotJoin``: ``Banned``, ``InviteOnly``, ``BadKey``,
``RoomFull``), ``say`` refuses a member without voice in a ``+m`` room
(``Moderated``, a ``CannotSend``).  ``oper`` is a server operator, whom no
room rule holds back.  ``JoinCheck`` and ``SendCheck`` are extra hooks,
called after the room's rules and before anything changes.  Changing the
rules themselves (topic, modes, kicks, invitations) is ``core.moderation``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .effects import Effect, ToRoom, ToShared, ToUser
from .errors import CannotSend, ClientError, NoSuchNick, NoSuchRoom
from .events import Joined, Kind, NickChanged, Parted, Private, Quit, Said, Tags
from .names import is_valid_nick, validate_nick, validate_room
from .protocol import sanitise
from .registry import Registry
from .rooms import Room

__all__ = [
    "AlreadyInRoom",
    "JoinCheck",
    "SendCheck",
    "Unreachable",
    "check_join",
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


def say(
    room: Room[Any],
    nick: str,
    lines: Sequence[bytes],
    kind: Kind = Kind.SAY,
    oper: bool = False,
    tags: Tags = (),
) -> ToRoom:
    """``nick``'s sanitised ``lines`` (UTF-8, no line ending) to everyone else in ``room``.

    The hot path, for a caller known to be in ``room``: the one check is
    ``+m`` (raises ``Moderated``).
    """
    if "m" in room.state.flags:
        room.state.check_speak(nick, oper)
    return ToRoom(room, Said(room.name, nick, tuple(lines), kind, tags))


def say_to(
    registry: Registry[Any],
    nick: str,
    name: str,
    lines: Sequence[bytes],
    kind: Kind = Kind.SAY,
    check: SendCheck | None = None,
    oper: bool = False,
    tags: Tags = (),
) -> ToRoom:
    """``say`` to the room called ``name``: raises ``NoSuchRoom`` or ``CannotSend``.

    Under ``+n`` (the default) only members may; under ``+m`` only those
    with voice (``Moderated``).
    """
    name = name.removeprefix("#")
    room = registry.room(name)
    if room is None:
        raise NoSuchRoom(sanitise(name))
    if "n" in room.state.flags and not oper and not registry.is_in(nick, room.name):
        raise CannotSend(room.name, f"you are not in #{room.name}")
    if check is not None:
        check(room, nick)
    return say(room, nick, lines, kind, oper, tags)


def check_join(
    registry: Registry[Any],
    nick: str,
    name: str,
    key: str | None = None,
    address: str | None = None,
    oper: bool = False,
) -> None:
    """Raise ``CannotJoin`` (``Banned``, ``InviteOnly``, ``BadKey``, ``RoomFull``) unless ``nick`` may join.

    ``address`` is the user's, for address bans; a new room admits anyone.  A
    room only other servers hold is checked against the rules they keep.
    """
    room = registry.room(name)
    if room is not None:
        room.state.check_join(nick, address, key, len(room.members), oper)
        return
    elsewhere = registry.rules_elsewhere(name)
    if elsewhere is not None:
        state, members = elsewhere
        state.check_join(nick, address, key, members, oper)


def _admitted(
    registry: Registry[M],
    nick: str,
    name: str,
    check: JoinCheck | None,
    key: str | None,
    address: str | None,
    oper: bool,
) -> str:
    """The validated name of the room ``nick`` may enter; raises what ``join`` says."""
    name = validate_room(name)
    if registry.is_in(nick, name):
        raise AlreadyInRoom(_spelled(registry, name))
    check_join(registry, nick, name, key, address, oper)
    if check is not None:
        check(registry.room(name), nick)
    return name


def join(
    registry: Registry[M],
    nick: str,
    name: str,
    check: JoinCheck | None = None,
    *,
    key: str | None = None,
    address: str | None = None,
    oper: bool = False,
) -> tuple[Room[M], list[Effect]]:
    """Put ``nick`` in the room named ``name`` (created if new) besides its others.

    Raises ``ClientError`` for a bad name, ``AlreadyInRoom``,
    ``TooManyRooms``, ``CannotJoin`` (``check_join``), or what ``check`` raises.
    """
    name = _admitted(registry, nick, name, check, key, address, oper)
    room = registry.join(nick, name)
    return room, [ToRoom(room, Joined(room.name, nick))]


def move(
    registry: Registry[M],
    nick: str,
    name: str,
    check: JoinCheck | None = None,
    *,
    key: str | None = None,
    address: str | None = None,
    oper: bool = False,
) -> tuple[Room[M], Room[M], list[Effect]]:
    """Move ``nick`` from its (first) room to the room ``name``: the line protocol's ``/join``.

    Returns (old, new, what the rooms see); raises as ``join`` does.
    """
    name = _admitted(registry, nick, name, check, key, address, oper)
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
    """Give ``old`` the nick ``new`` (validated); raises ``NickTaken`` or ``NickInvalid``.

    Everyone who shares a room with the user hears it once; in no room, nobody.
    """
    new = validate_nick(new)
    rooms = registry.rename(old, new)
    return [ToShared(rooms, NickChanged(old, new))] if rooms else []


def quit(registry: Registry[Any], nick: str, reason: str | None = None) -> list[Effect]:
    """Forget ``nick``; everyone who shared a room with it hears it once."""
    rooms = registry.remove(nick)
    if not rooms:
        return []
    return [ToShared(rooms, Quit(nick, reason))]


def private(
    registry: Registry[Any], nick: str, target: str, text: str, kind: Kind = Kind.SAY, tags: Tags = ()
) -> tuple[str, list[Effect]]:
    """``text`` from ``nick`` to ``target`` alone, here or on another server.

    Returns the target's nick as spelled by its holder and the effects;
    raises ``NoSuchNick`` or ``Unreachable``.  ``text`` is sanitised here.
    """
    text = sanitise(text)
    member = registry.get(target)
    if member is not None:
        spelled = registry.nick_of(target) or target
        return spelled, [ToUser(member, Private(nick, spelled, text, kind, tags))]
    if not is_valid_nick(target):
        raise NoSuchNick(sanitise(target))
    sent = registry.private(target, Private(nick, target, text, kind))
    if sent is None:
        raise Unreachable(target)
    if not sent:
        raise NoSuchNick(target)
    return target, []
