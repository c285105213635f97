"""IRC's room running and server operators: TOPIC, channel MODE, KICK, INVITE, OPER, KILL.

PURE.  Each handler calls ``core.moderation`` (the room's rules, the same
for the line protocol's ``/topic``, ``/mode``, ``/kick``, ``/invite``) and
adds what IRC shows its caller: the numerics and its own copy of the
change.  Refusals are typed errors, put into numerics by ``numeric_for``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import errors, moderation
from ..effects import Authenticate, Disconnect, Effect
from . import numerics as n

if TYPE_CHECKING:
    from .session import IrcSession

__all__ = ["chanmode", "invite", "kick", "kill", "oper", "topic", "topic_lines"]


def topic_lines(s: IrcSession[Any], room: Any, quiet: bool = False) -> list[Effect]:
    """RPL_TOPIC and RPL_TOPICWHOTIME, or RPL_NOTOPIC (nothing if ``quiet``, as on JOIN)."""
    shown = room.state.topic
    if shown is None or not shown.text:
        return [] if quiet else [s.reply(n.RPL_NOTOPIC, f"#{room.name}", "No topic is set")]
    return [
        s.reply(n.RPL_TOPIC, f"#{room.name}", shown.text),
        s.reply(n.RPL_TOPICWHOTIME, f"#{room.name}", s.renderer.source(shown.nick), str(int(shown.time))),
    ]


def topic(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    nick = s.nick
    assert nick is not None
    if len(p) < 2:
        room = moderation.room_for(s.registry, nick, p[0], s.is_oper)
        return topic_lines(s, room)
    event, effects = moderation.set_topic(s.registry, nick, p[0], p[1], s.info.clock(), s.is_oper)
    return [s.own(event), *effects]


def chanmode(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    """MODE #room [changes]: show the modes, list the bans, or change them."""
    nick = s.nick
    assert nick is not None
    name = p[0][1:]
    room = s.registry.room(name)
    if room is None:
        return [s.reply(n.ERR_NOSUCHCHANNEL, p[0], "No such channel")]
    if len(p) < 2:
        member = s.registry.is_in(nick, room.name) or s.is_oper
        shown: list[Effect] = [
            s.reply(n.RPL_CHANNELMODEIS, f"#{room.name}", *room.state.mode_words(show_key=member))
        ]
        if room.created is not None:
            shown.append(s.reply(n.RPL_CREATIONTIME, f"#{room.name}", str(int(room.created))))
        return shown
    if p[1].lstrip("+") in ("b", "") and len(p) == 2:
        return _bans(s, room)
    try:
        event, effects = moderation.change_modes(s.registry, nick, p[0], p[1:], s.info.clock(), s.is_oper)
    except errors.InvalidModeParam as err:
        arg = "*" if err.letter == "k" else err.arg  # a key, even a bad one, is not echoed
        return [s.reply(n.ERR_INVALIDMODEPARAM, f"#{room.name}", err.letter, arg, str(err))]
    if event is None:
        return _bans(s, room) if "b" in p[1] else []
    return [s.own(event), *effects]


def _bans(s: IrcSession[Any], room: Any) -> list[Effect]:
    target = f"#{room.name}"
    listed: list[Effect] = [
        s.reply(n.RPL_BANLIST, target, ban.mask.text, ban.nick, str(int(ban.time))) for ban in room.state.bans
    ]
    return [*listed, s.reply(n.RPL_ENDOFBANLIST, target, "End of channel ban list")]


def kick(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    by = s.nick
    assert by is not None
    reason = p[2] if len(p) > 2 and p[2] else None
    effects: list[Effect] = []
    for target in p[1].split(",")[:1]:
        event, done = moderation.kick(s.registry, by, p[0], target, reason, s.is_oper)
        effects += [s.own(event), *done]
    return effects


def invite(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    by = s.nick
    assert by is not None
    event, effects = moderation.invite(s.registry, by, p[1], p[0], s.is_oper)
    return [s.reply(n.RPL_INVITING, event.nick, f"#{event.room}"), *effects]


def oper(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    """OPER NAME PASSWORD: checked by the shell off the event loop; the answer is ``IrcSession.opered``."""
    return [Authenticate(p[0], p[1])]


def kill(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    if not s.is_oper:
        return [s.reply(n.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator")]
    member = s.registry.get(p[0])
    if member is None:
        return [s.reply(n.ERR_NOSUCHNICK, p[0], "No such nick/channel")]
    reason = p[1] if len(p) > 1 and p[1] else "no reason"
    return [Disconnect(member, f"Killed by {s.nick}: {reason}", f"Killed by {s.nick}: {reason}")]
