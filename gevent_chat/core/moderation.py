"""Running a room, whatever protocol the operator speaks: topic, modes, kick, ban, invite.

PURE, beside ``core.chat``: the line protocol's ``/topic``, ``/op``, ``/kick``,
``/ban``, ``/mode``, ``/invite`` and IRC's ``TOPIC``, ``MODE``, ``KICK`` and
``INVITE`` call these, and differ only in how they answer their caller.
The rules are ``core.roomstate``'s; a refusal is a typed ``ClientError``
(``NotOperator``, ``UserNotInRoom``, ``NotInRoom``, ``NoSuchRoom``, ...)
carrying what an IRC numeric needs, and changes nothing.

Each operation returns the event (for the caller to echo in its own
protocol; ``ToRoom`` skips the caller) and the effects others see.  A
kicked user hears it through ``Removed``, which their own session acts on.
``oper`` is a server operator: an operator of every room, in it or not.
``when`` is the caller's clock (seconds since the epoch): this reads none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .effects import Effect, Removed, ToRoom, ToUser
from .errors import ClientError, NoSuchNick, NoSuchRoom, NotInRoom, UserNotInRoom
from .events import Event, Invited, Kicked, ModeChanged, TopicSet
from .masks import parse_mask
from .modes import Change, parse_changes
from .names import name_key
from .protocol import sanitise
from .registry import Registry
from .rooms import Room

__all__ = [
    "BAN_REASON",
    "UserInRoom",
    "apply_remote",
    "change_modes",
    "invite",
    "kick",
    "room_for",
    "set_topic",
]

#: The reason given to a member a new ban kicks.
BAN_REASON = "banned"


class UserInRoom(ClientError):
    """The user invited is in the room already (IRC 443 ERR_USERONCHANNEL)."""

    def __init__(self, nick: str, room: str) -> None:
        super().__init__(f"{nick} is already in #{room}")
        self.nick = nick
        self.room = room


def room_for(registry: Registry[Any], nick: str, name: str, oper: bool = False) -> Room[Any]:
    """The room ``name`` that ``nick`` acts on: raises ``NoSuchRoom`` or ``NotInRoom``.

    A server operator (``oper``) may act on a room they are not in.
    """
    name = name.removeprefix("#")
    room = registry.room(name)
    if room is None:
        raise NoSuchRoom(sanitise(name))
    if not oper and not registry.is_in(nick, room.name):
        raise NotInRoom(room.name)
    return room


def set_topic(
    registry: Registry[Any], nick: str, name: str, text: str, when: float, oper: bool = False
) -> tuple[TopicSet, list[Effect]]:
    """``nick`` sets the topic of ``name`` (empty: clears it); ``NotOperator`` under ``+t``."""
    room = room_for(registry, nick, name, oper)
    room.state, event = room.state.set_topic(nick, text, when, oper)
    return event, [ToRoom(room, event)]


def change_modes(
    registry: Registry[Any], nick: str, name: str, words: Sequence[str], when: float, oper: bool = False
) -> tuple[ModeChanged | None, list[Effect]]:
    """Apply the mode changes in ``words`` (``["+mk", "key"]``) to ``name``, all or none.

    A new ban kicks the members it matches (not operators, nor ``nick``),
    each with the reason ``BAN_REASON``.  Returns None for the event when
    nothing changed (a bare ``+b`` is a listing, for the caller to show).
    """
    room = room_for(registry, nick, name, oper)
    changes = parse_changes(words)

    def member(target: str) -> str | None:
        if registry.is_in(target, room.name):
            return registry.nick_of(target)
        return _elsewhere(registry, room, target)

    before = room.state
    after, event = before.change_modes(nick, changes, member, when, oper)
    room.state = after
    if event is None:
        return None, []
    effects: list[Effect] = [ToRoom(room, event)]
    added = [parse_mask(arg) for change, arg in event.changes if change == "+b" and arg is not None]
    if added:
        effects += _kick_banned(registry, room, nick, added, oper)
    return event, effects


def _kick_banned(
    registry: Registry[Any], room: Room[Any], by: str, masks: list[Any], oper: bool
) -> list[Effect]:
    """Kick the members of ``room`` that ``masks`` match, operators and ``by`` aside."""
    effects: list[Effect] = []
    for target in room.members:
        nick = getattr(target, "nick", None)
        if nick is None or name_key(nick) == name_key(by) or room.state.is_operator(nick):
            continue
        address = getattr(target, "address", None)
        if any(mask.matches(nick, address) for mask in masks):
            effects += kick(registry, by, room.name, nick, BAN_REASON, oper)[1]
    return effects


def kick(
    registry: Registry[Any], by: str, name: str, nick: str, reason: str | None, oper: bool = False
) -> tuple[Kicked, list[Effect]]:
    """``by`` removes ``nick`` from ``name``: raises ``NotOperator`` or ``UserNotInRoom``.

    The room sees the ``Kicked`` event; the kicked member gets ``Removed``.
    """
    room = room_for(registry, by, name, oper)
    target = registry.get(nick)
    if target is None or not registry.is_in(nick, room.name):
        remote = _elsewhere(registry, room, nick)
        if remote is None:
            raise UserNotInRoom(sanitise(nick), room.name)
        # On another server: that server takes them out when the event reaches it.
        room.state, event = room.state.kick(by, remote, reason, oper)
        return event, [ToRoom(room, event)]
    spelled = registry.nick_of(nick) or nick
    state, event = room.state.kick(by, spelled, reason, oper)
    registry.part(spelled, room.name)
    room.state = state.leave(spelled)
    return event, [ToRoom(room, event), Removed(target, event)]


def _elsewhere(registry: Registry[Any], room: Room[Any], nick: str) -> str | None:
    """``nick`` as spelled if they are in ``room`` on another server (asked of the directory)."""
    if registry.directory is None or registry.get(nick) is not None:
        return None
    key = name_key(nick)
    return next((n for n in registry.who(room) or () if name_key(n) == key), None)


def apply_remote(registry: Registry[Any], room: Room[Any], event: Event, when: float) -> list[Effect]:
    """Bring this server's copy of ``room``'s rules in line with ``event``, decided on another server.

    Called for every event a room receives from elsewhere, in order with its
    lines.  A kick takes a member of this server out (``Removed``); a new
    ban kicks the members of this server it matches, as on the server that
    set it (the returned effects tell the room, here and elsewhere).  The
    other server checked the rules, so they are applied as a server
    operator's; a change this copy cannot take (it drifted) is skipped.
    """
    try:
        if isinstance(event, TopicSet):
            room.state = room.state.set_topic(event.nick, event.text, when, oper=True)[0]
        elif isinstance(event, ModeChanged):
            changes = [Change(change[0], change[1:], arg) for change, arg in event.changes]
            spelled = registry.nick_of
            room.state = room.state.change_modes(
                event.nick, changes, lambda n: spelled(n) or n, when, oper=True
            )[0]
            added = [parse_mask(arg) for change, arg in event.changes if change == "+b" and arg is not None]
            if added:
                return _kick_banned(registry, room, event.nick, added, oper=True)
        elif isinstance(event, Kicked):
            room.state = room.state.leave(event.nick)
            target = registry.get(event.nick)
            if target is not None and registry.is_in(event.nick, room.name):
                registry.part(event.nick, room.name)
                return [Removed(target, event)]
    except ClientError:
        pass  # this copy drifted from the other server's (e.g. a ban list already full)
    return []


def invite(
    registry: Registry[Any], by: str, name: str, nick: str, oper: bool = False
) -> tuple[Invited, list[Effect]]:
    """``by`` invites ``nick`` to ``name``; only an operator may in a ``+i`` room.

    Raises ``NoSuchNick`` (the invitee must be on this server), ``UserInRoom``.
    The invitee hears the ``Invited`` event.
    """
    room = room_for(registry, by, name, oper)
    target = registry.get(nick)
    if target is None:
        raise NoSuchNick(sanitise(nick))
    spelled = registry.nick_of(nick) or nick
    if registry.is_in(spelled, room.name):
        raise UserInRoom(spelled, room.name)
    room.state, event = room.state.invite(by, spelled, oper)
    return event, [ToUser(target, event)]
