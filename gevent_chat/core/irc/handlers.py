"""IRC commands, one function each: parameters in, effects out.

PURE.  A handler reads the registry and calls the chat's shared
operations; what it adds is IRC's: numerics for the caller, its own copy
of what it did (IRC echoes a JOIN, PART or NICK to its author), and the
replies of the read-only commands (NAMES, WHO, WHOIS, LIST...).
``ClientError`` subclasses from the shared operations become numerics in
``numeric_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import chat, errors, moderation
from ..effects import Close, Effect, Renamed, Send, ToRoom
from ..events import Joined, Kind, NickChanged, Private, Tags
from ..names import validate_nick
from ..protocol import sanitise
from . import about, channels, queries
from . import numerics as n
from .channels import topic_lines
from .message import line
from .queries import names_of
from .render import history_batch

if TYPE_CHECKING:
    from .session import IrcSession

__all__ = ["COMMANDS", "numeric_for", "quit_chat", "rename"]

Handler = Callable[["IrcSession[Any]", list[str]], list[Effect]]

#: Targets one PRIVMSG or NOTICE may name (TARGMAX).
MAX_TARGETS = 4


#: ``CannotJoin.why`` -> its numeric.
_CANNOT_JOIN = {
    "key": (n.ERR_BADCHANNELKEY, "Cannot join channel (+k)"),
    "banned": (n.ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"),
    "invite": (n.ERR_INVITEONLYCHAN, "Cannot join channel (+i)"),
    "full": (n.ERR_CHANNELISFULL, "Cannot join channel (+l)"),
}


def numeric_for(s: IrcSession[Any], err: errors.ClientError) -> list[Effect]:
    """The numeric a shared operation's error is on IRC (a server NOTICE if it has none)."""
    if isinstance(err, errors.NoSuchNick | chat.Unreachable):
        return [s.reply(n.ERR_NOSUCHNICK, err.nick, "No such nick/channel")]
    if isinstance(err, errors.NoSuchRoom):
        return [s.reply(n.ERR_NOSUCHCHANNEL, f"#{err.room}", "No such channel")]
    if isinstance(err, errors.NotInRoom):
        return [s.reply(n.ERR_NOTONCHANNEL, f"#{err.room}", "You're not on that channel")]
    if isinstance(err, errors.TooManyRooms):
        return [s.reply(n.ERR_TOOMANYCHANNELS, f"#{err.room}", "You have joined too many channels")]
    if isinstance(err, errors.CannotSend):
        return [s.reply(n.ERR_CANNOTSENDTOCHAN, f"#{err.room}", f"Cannot send to channel ({err.why})")]
    if isinstance(err, errors.CannotJoin):
        code, text = _CANNOT_JOIN.get(err.why, (n.ERR_INVITEONLYCHAN, "Cannot join channel"))
        return [s.reply(code, f"#{err.room}", text)]
    if isinstance(err, errors.NotOperator):
        return [s.reply(n.ERR_CHANOPRIVSNEEDED, f"#{err.room}", "You're not channel operator")]
    if isinstance(err, errors.UserNotInRoom):
        if s.registry.get(err.nick) is None:
            return [s.reply(n.ERR_NOSUCHNICK, err.nick, "No such nick/channel")]
        return [s.reply(n.ERR_USERNOTINCHANNEL, err.nick, f"#{err.room}", "They aren't on that channel")]
    if isinstance(err, moderation.UserInRoom):
        return [s.reply(n.ERR_USERONCHANNEL, err.nick, f"#{err.room}", "is already on channel")]
    if isinstance(err, errors.BanListFull):
        return [s.reply(n.ERR_BANLISTFULL, f"#{err.room}", err.mask, "Channel ban list is full")]
    if isinstance(err, errors.UnknownMode):
        return [s.reply(n.ERR_UNKNOWNMODE, err.letter, "is unknown mode char to me")]
    if isinstance(err, errors.NotServerOperator):
        return [s.reply(n.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator")]
    if isinstance(err, errors.NickTaken):
        return [s.reply(n.ERR_NICKNAMEINUSE, s.target, str(err))]
    if isinstance(err, errors.NickInvalid):
        return [s.reply(n.ERR_ERRONEUSNICKNAME, s.target, str(err))]
    return [s.notice(str(err))]


# -- registration and connection -------------------------------------------------------


def _pass(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return s.register_pass(p)


def _nick(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    if s.nick is None:
        return s.register_nick(p[0])
    try:
        new = validate_nick(p[0])
    except errors.ClientError:
        return [s.reply(n.ERR_ERRONEUSNICKNAME, p[0], "Erroneous nickname")]
    if new == s.nick:
        return []
    try:
        return rename(s, new)
    except errors.NickTaken:
        return [s.reply(n.ERR_NICKNAMEINUSE, new, "Nickname is already in use")]


def rename(s: IrcSession[Any], new: str) -> list[Effect]:
    """Take the nick ``new``; raises ``NickTaken`` or ``NickInvalid``."""
    old = s.nick
    assert old is not None
    shared = chat.rename(s.registry, old, new)
    s.info.profiles.rename(old, new)
    s.nick = new
    return [Renamed(new, old), s.own(NickChanged(old, new)), *shared]


def _user(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return s.register_user(p)


def _cap(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    replies = s.caps.command(s.info.name, s.nick, p, s.nick is not None)
    if s.nick is not None:
        s.renegotiated()
    return [Send(r) for r in replies]


def _ping(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    if not p or not p[0]:
        return [s.reply(n.ERR_NOORIGIN, "No origin specified")]
    return [Send(line("PONG", s.info.name, p[0], source=s.info.name))]


def _pong(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return []  # any line is a sign of life; the shell noted it


def _quit(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    reason = sanitise(p[0]) if p and p[0] else None
    shown = f"Quit: {reason}" if reason else "Client Quit"
    s.closed = True
    return [Send(line("ERROR", f"Closing Link: {s.cloak} ({shown})")), Close(shown if s.nick else None)]


def quit_chat(s: IrcSession[Any], reason: str | None) -> list[Effect]:
    """Leave every room and the registry; everyone who shared a room sees one QUIT."""
    nick = s.nick
    assert nick is not None
    effects = chat.quit(s.registry, nick, reason)
    s.info.profiles.remove(nick)
    return effects


# -- chat ---------------------------------------------------------------------------------


def _split_ctcp(text: str) -> tuple[Kind, str] | None:
    """(kind, text) of a message; None for a CTCP request other than ACTION (not relayed)."""
    if text.startswith("\x01"):
        body = text[1:].removesuffix("\x01")
        if body.upper().startswith("ACTION"):
            return Kind.ME, body[7:] if body[6:7] == " " else body[6:]
        return None
    return Kind.SAY, text


def _privmsg(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return _message(s, p, notice=False)


def _notice(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return _message(s, p, notice=True)


def _tagmsg(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    """IRCv3 TAGMSG: client tags alone, relayed to clients that take message-tags (none: nothing)."""
    if not p or not p[0]:
        return [s.reply(n.ERR_NORECIPIENT, "No recipient given (TAGMSG)")]
    if not s.tags:
        return []
    effects: list[Effect] = []
    tags = _tags(s)
    for target in p[0].split(",")[:MAX_TARGETS]:
        if target.startswith("#"):
            effects += _to_room(s, target, "", Kind.TAG, False, tags)
        elif s.registry.get(target) is not None:  # the bus carries no tags: local users only
            effects += _to_user(s, target, "", Kind.TAG, True, tags)
        else:
            effects.append(s.reply(n.ERR_NOSUCHNICK, target, "No such nick/channel"))
    return effects


def _message(s: IrcSession[Any], p: list[str], notice: bool) -> list[Effect]:
    command = "NOTICE" if notice else "PRIVMSG"
    if not p or not p[0]:
        return [] if notice else [s.reply(n.ERR_NORECIPIENT, f"No recipient given ({command})")]
    if len(p) < 2 or not p[1]:
        return [] if notice else [s.reply(n.ERR_NOTEXTTOSEND, "No text to send")]
    split = _split_ctcp(p[1])
    if split is None:
        return []
    kind, raw = split
    kind = Kind.NOTICE if notice and kind is Kind.SAY else kind
    text = sanitise(raw)
    if not text.strip():
        return [] if notice else [s.reply(n.ERR_NOTEXTTOSEND, "No text to send")]
    effects: list[Effect] = []
    tags = _tags(s)
    for target in p[0].split(",")[:MAX_TARGETS]:
        if target.startswith("#"):
            effects += _to_room(s, target, text, kind, notice, tags)
        else:
            effects += _to_user(s, target, text, kind, notice, tags)
    return effects


def say_lines(s: IrcSession[Any], room: str, lines: list[bytes]) -> list[Effect]:
    """Plain PRIVMSG ``lines`` (clean, non-blank) to ``#room`` as one ``Said``: the hot path."""
    assert s.nick is not None
    try:
        msgid = s.info.msgid()
        tags = (("msgid", msgid),) if msgid else ()
        said = chat.say_to(s.registry, s.nick, room, lines, Kind.SAY, oper=s.is_oper, tags=tags)
    except errors.ClientError as err:
        return numeric_for(s, err) * len(lines)
    if "echo-message" in s.caps:
        return [said, s.own(said.event)]
    return [said]


def _tags(s: IrcSession[Any]) -> Tags:
    """What a message carries to clients with message-tags: a new ``msgid`` and the sender's client tags."""
    msgid = s.info.msgid()
    return (("msgid", msgid), *s.tags) if msgid else s.tags


def _to_room(
    s: IrcSession[Any], target: str, text: str, kind: Kind, notice: bool, tags: Tags
) -> list[Effect]:
    assert s.nick is not None
    try:
        lines = (text.encode(),) if kind is not Kind.TAG else ()
        said = chat.say_to(s.registry, s.nick, target[1:], lines, kind, oper=s.is_oper, tags=tags)
    except errors.ClientError as err:
        return [] if notice else numeric_for(s, err)
    effects: list[Effect] = [said]
    if "echo-message" in s.caps:
        effects.append(s.own(said.event))
    return effects


def _to_user(
    s: IrcSession[Any], target: str, text: str, kind: Kind, notice: bool, tags: Tags
) -> list[Effect]:
    assert s.nick is not None
    try:
        spelled, effects = chat.private(s.registry, s.nick, target, text, kind, tags)
    except errors.ClientError as err:
        return [] if notice else numeric_for(s, err)
    profile = s.info.profiles.get(spelled)
    if profile is not None and profile.away is not None and not notice:
        effects.append(s.reply(n.RPL_AWAY, spelled, profile.away))
    if "echo-message" in s.caps:
        effects.append(s.own(Private(s.nick, spelled, text, kind, tags)))
    return effects


def _join(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    if p[0] == "0":
        return [e for room in list(s.registry.rooms_of(s.target)) for e in _part_one(s, room.name, None)]
    keys = p[1].split(",") if len(p) > 1 else []
    effects: list[Effect] = []
    for i, target in enumerate(p[0].split(",")):
        effects += _join_one(s, target, keys[i] if i < len(keys) else None)
    return effects


def _join_one(s: IrcSession[Any], target: str, key: str | None) -> list[Effect]:
    nick = s.nick
    assert nick is not None
    if not target.startswith("#") or len(target) < 2:
        return [s.reply(n.ERR_NOSUCHCHANNEL, target, "No such channel")]
    try:
        room, effects = chat.join(s.registry, nick, target[1:], key=key, address=s.host, oper=s.is_oper)
    except chat.AlreadyInRoom:
        return []
    except errors.ClientError as err:
        if type(err) is errors.ClientError:  # a name the rules refuse
            return [s.reply(n.ERR_NOSUCHCHANNEL, target, "No such channel")]
        return numeric_for(s, err)
    if room.created is None:  # made by this JOIN (or one from the line protocol, first seen now)
        room.created = s.info.clock()
    mine: list[Effect] = [
        s.own(Joined(room.name, nick)),
        *topic_lines(s, room, quiet=True),
        *names_of(s, room.name),
    ]
    profile = s.info.profiles.get(nick)
    away = queries.notify_away(s, [room]) if profile is not None and profile.away is not None else []
    return [*mine, *history(s, room), *effects, *away]


def history(s: IrcSession[Any], room: Any) -> list[Effect]:
    """The room's remembered chat for a joiner that can tell it from live chat (batch or server-time)."""
    if "batch" not in s.caps and "server-time" not in s.caps:
        return []
    entries = s.registry.history_of(room)
    data = history_batch(s.renderer, room.name, entries, s.caps.enabled, s.batch_id())
    return [Send(data, None, data.count(b"\n"))] if data else []


def _part(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    reason = sanitise(p[1]) if len(p) > 1 and p[1] else None
    effects: list[Effect] = []
    for target in p[0].split(","):
        try:
            effects += _part_one(s, target.removeprefix("#"), reason)
        except errors.ClientError as err:
            effects += numeric_for(s, err)
    return effects


def _part_one(s: IrcSession[Any], name: str, reason: str | None) -> list[Effect]:
    nick = s.nick
    assert nick is not None
    effects = chat.part(s.registry, nick, name, reason)
    return [*(s.own(e.event) for e in effects if isinstance(e, ToRoom)), *effects]


COMMANDS: dict[str, tuple[Handler, int]] = {
    "PASS": (_pass, 1),
    "NICK": (_nick, 1),
    "USER": (_user, 4),
    "CAP": (_cap, 1),
    "PING": (_ping, 1),
    "PONG": (_pong, 0),
    "QUIT": (_quit, 0),
    "PRIVMSG": (_privmsg, 0),
    "NOTICE": (_notice, 0),
    "TAGMSG": (_tagmsg, 0),
    "JOIN": (_join, 1),
    "PART": (_part, 1),
    "NAMES": (queries.names, 0),
    "LIST": (queries.list_rooms, 0),
    "WHO": (queries.who, 0),
    "WHOIS": (queries.whois, 1),
    "WHOWAS": (queries.whowas, 1),
    "ISON": (queries.ison, 1),
    "USERHOST": (queries.userhost, 1),
    "AWAY": (queries.away, 0),
    "MODE": (queries.mode, 1),
    "LUSERS": (about.lusers, 0),
    "MOTD": (about.motd, 0),
    "VERSION": (about.version, 0),
    "TIME": (about.time_of_day, 0),
    "INFO": (about.info, 0),
    "TOPIC": (channels.topic, 1),
    "KICK": (channels.kick, 2),
    "INVITE": (channels.invite, 2),
    "OPER": (channels.oper, 2),
    "KILL": (channels.kill, 1),
    "SETNAME": (queries.setname, 1),
}
