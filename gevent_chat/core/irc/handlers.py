"""IRC commands, one function each: parameters in, effects out.

PURE.  A handler reads the registry and calls the chat's shared
operations; what it adds is IRC's: numerics for the caller, its own copy
of what it did (IRC echoes a JOIN, PART or NICK to its author), and the
replies of the read-only commands (NAMES, WHO, WHOIS, LIST...).
``ClientError`` subclasses from the shared operations become numerics in
``numeric_for``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from .. import chat, errors
from ..effects import Close, Effect, Renamed, Send, ToRoom
from ..events import Joined, Kind, NickChanged, Private
from ..names import casefold, validate_nick
from ..protocol import sanitise
from . import numerics as n
from .message import line
from .render import history_batch

if TYPE_CHECKING:
    from .session import IrcSession

__all__ = ["COMMANDS", "numeric_for", "quit_chat", "rename"]

Handler = Callable[["IrcSession[Any]", list[str]], list[Effect]]

#: Targets one PRIVMSG or NOTICE may name (TARGMAX).
MAX_TARGETS = 4
#: Nicks per RPL_NAMREPLY line, so the line stays under 512 bytes.
NAMES_PER_LINE = 12


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
    for target in p[0].split(",")[:MAX_TARGETS]:
        if target.startswith("#"):
            effects += _to_room(s, target, text, kind, notice)
        else:
            effects += _to_user(s, target, text, kind, notice)
    return effects


def say_lines(s: IrcSession[Any], room: str, lines: list[bytes]) -> list[Effect]:
    """Plain PRIVMSG ``lines`` (clean, non-blank) to ``#room`` as one ``Said``: the hot path."""
    assert s.nick is not None
    try:
        said = chat.say_to(s.registry, s.nick, room, lines, Kind.SAY, s.info.checks.send)
    except errors.ClientError as err:
        return numeric_for(s, err) * len(lines)
    if "echo-message" in s.caps:
        return [said, s.own(said.event)]
    return [said]


def _to_room(s: IrcSession[Any], target: str, text: str, kind: Kind, notice: bool) -> list[Effect]:
    assert s.nick is not None
    try:
        said = chat.say_to(s.registry, s.nick, target[1:], (text.encode(),), kind, s.info.checks.send)
    except errors.ClientError as err:
        return [] if notice else numeric_for(s, err)
    effects: list[Effect] = [said]
    if "echo-message" in s.caps:
        effects.append(s.own(said.event))
    return effects


def _to_user(s: IrcSession[Any], target: str, text: str, kind: Kind, notice: bool) -> list[Effect]:
    assert s.nick is not None
    try:
        spelled, effects = chat.private(s.registry, s.nick, target, text, kind)
    except errors.ClientError as err:
        return [] if notice else numeric_for(s, err)
    profile = s.info.profiles.get(spelled)
    if profile is not None and profile.away is not None and not notice:
        effects.append(s.reply(n.RPL_AWAY, spelled, profile.away))
    if "echo-message" in s.caps:
        effects.append(s.own(Private(s.nick, spelled, text, kind)))
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
        room, effects = chat.join(s.registry, nick, target[1:], s.info.checks.join_with(key))
    except chat.AlreadyInRoom:
        return []
    except errors.ClientError as err:
        if type(err) is errors.ClientError:  # a name the rules refuse
            return [s.reply(n.ERR_NOSUCHCHANNEL, target, "No such channel")]
        return numeric_for(s, err)
    mine: list[Effect] = [s.own(Joined(room.name, nick)), *topic_of(s, room), *names_of(s, room.name)]
    profile = s.info.profiles.get(nick)
    away = notify_away(s, [room]) if profile is not None and profile.away is not None else []
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


# -- queries ------------------------------------------------------------------------------


def _prefixes(s: IrcSession[Any], room: str, nick: str) -> str:
    """The status prefixes of ``nick`` in ``room`` (all with multi-prefix, else the highest)."""
    return ""


def topic_of(s: IrcSession[Any], room: Any) -> list[Effect]:
    """RPL_TOPIC and RPL_TOPICWHOTIME for a room with a topic."""
    return []


def names_of(s: IrcSession[Any], name: str, asked: str | None = None) -> list[Effect]:
    """RPL_NAMREPLY lines and RPL_ENDOFNAMES for the room ``name`` (``asked``: as the client wrote it)."""
    room = s.registry.room(name)
    if room is None:
        return [s.reply(n.RPL_ENDOFNAMES, asked or f"#{name}", "End of /NAMES list")]
    full = "userhost-in-names" in s.caps
    render = s.renderer.source if full else (lambda nick: nick)
    shown = [_prefixes(s, room.name, m.nick) + render(m.nick) for m in room.members if m.nick]
    effects: list[Effect] = [
        s.reply(n.RPL_NAMREPLY, "=", f"#{room.name}", " ".join(shown[i : i + NAMES_PER_LINE]))
        for i in range(0, len(shown), NAMES_PER_LINE)
    ]
    effects.append(s.reply(n.RPL_ENDOFNAMES, f"#{room.name}", "End of /NAMES list"))
    return effects


def _names(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    if not p:
        return [s.reply(n.RPL_ENDOFNAMES, "*", "End of /NAMES list")]
    effects: list[Effect] = []
    for target in p[0].split(","):
        effects += names_of(s, target[1:], target) if target.startswith("#") else names_of(s, "", target)
    return effects


def _list(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    wanted = {t.removeprefix("#").casefold() for t in p[0].split(",")} if p and p[0] else None
    effects: list[Effect] = [s.reply(n.RPL_LISTSTART, "Channel", "Users  Name")]
    for room in s.registry.rooms():
        if wanted is None or room.name.casefold() in wanted:
            effects.append(s.reply(n.RPL_LIST, f"#{room.name}", str(len(room.members)), ""))
    effects.append(s.reply(n.RPL_LISTEND, "End of /LIST"))
    return effects


def _who_line(s: IrcSession[Any], channel: str, nick: str) -> Send:
    profile = s.info.profiles.get(nick)
    user, host, real = (
        (profile.user, profile.cloak, profile.realname) if profile else (nick, s.info.name, nick)
    )
    away = "G" if profile is not None and profile.away is not None else "H"
    return s.reply(n.RPL_WHOREPLY, channel, user, host, s.info.name, nick, away, f"0 {real}")


def _visible(s: IrcSession[Any], nick: str) -> bool:
    """Whether the caller may see ``nick`` in a WHO by mask: not +i, or sharing a room."""
    profile = s.info.profiles.get(nick)
    if profile is None or "i" not in profile.modes or nick == s.nick:
        return True
    mine = {id(r) for r in s.registry.rooms_of(s.target)}
    return any(id(r) in mine for r in s.registry.rooms_of(nick))


def _who(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    mask = p[0] if p else "*"
    effects: list[Effect] = []
    if mask.startswith("#"):
        room = s.registry.room(mask[1:])
        if room is not None:
            effects += [_who_line(s, f"#{room.name}", m.nick) for m in room.members if m.nick]
    else:
        pattern = casefold(mask)
        for member in s.registry:
            nick = member.nick
            if nick is not None and fnmatchcase(casefold(nick), pattern) and _visible(s, nick):
                rooms = s.registry.rooms_of(nick)
                effects.append(_who_line(s, f"#{rooms[0].name}" if rooms else "*", nick))
    effects.append(s.reply(n.RPL_ENDOFWHO, mask, "End of WHO list"))
    return effects


def _whois(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    target = p[-1].split(",")[0]
    nick = s.registry.nick_of(target)
    if nick is None:
        return [
            s.reply(n.ERR_NOSUCHNICK, target, "No such nick/channel"),
            s.reply(n.RPL_ENDOFWHOIS, target, "End of /WHOIS list"),
        ]
    profile = s.info.profiles.get(nick)
    user, host, real = (
        (profile.user, profile.cloak, profile.realname) if profile else (nick, s.info.name, nick)
    )
    effects: list[Effect] = [s.reply(n.RPL_WHOISUSER, nick, user, host, "*", real)]
    rooms = [f"#{r.name}" for r in s.registry.rooms_of(nick)]
    if rooms:
        effects.append(s.reply(n.RPL_WHOISCHANNELS, nick, " ".join(rooms)))
    effects.append(s.reply(n.RPL_WHOISSERVER, nick, s.info.name, s.info.network))
    if profile is not None and profile.away is not None:
        effects.append(s.reply(n.RPL_AWAY, nick, profile.away))
    if profile is not None:
        effects.append(
            s.reply(n.RPL_WHOISIDLE, nick, "0", str(int(profile.signon)), "seconds idle, signon time")
        )
    effects.append(s.reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list"))
    return effects


def _whowas(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    target = p[0].split(",")[0]
    found = s.info.profiles.whowas(target)
    if p[1:] and p[1].isdigit() and int(p[1]) > 0:
        found = found[: int(p[1])]
    effects: list[Effect] = []
    for d in found:
        effects.append(s.reply(n.RPL_WHOWASUSER, d.nick, d.user, d.host, "*", d.realname))
        effects.append(s.reply(n.RPL_WHOISSERVER, d.nick, s.info.name, s.info.network))
    if not found:
        effects.append(s.reply(n.ERR_WASNOSUCHNICK, target, "There was no such nickname"))
    effects.append(s.reply(n.RPL_ENDOFWHOWAS, target, "End of WHOWAS"))
    return effects


def _ison(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    present = [s.registry.nick_of(nick) for arg in p for nick in arg.split()]
    return [s.reply(n.RPL_ISON, " ".join(x for x in present if x))]


def _userhost(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    found = []
    for nick in p[:5]:
        held = s.registry.nick_of(nick)
        if held is not None:
            profile = s.info.profiles.get(held)
            away = "-" if profile is not None and profile.away is not None else "+"
            mask = s.renderer.source(held).partition("!")[2]
            found.append(f"{held}={away}{mask}")
    return [s.reply(n.RPL_USERHOST, " ".join(found))]


def _away(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    profile = s.info.profiles.get(s.target)
    assert profile is not None
    text = sanitise(p[0]) if p and p[0] else ""
    if not text:
        profile.away = None
        return [
            s.reply(n.RPL_UNAWAY, "You are no longer marked as being away"),
            *notify_away(s, s.registry.rooms_of(s.target)),
        ]
    profile.away = text
    return [
        s.reply(n.RPL_NOWAWAY, "You have been marked as being away"),
        *notify_away(s, s.registry.rooms_of(s.target)),
    ]


def notify_away(s: IrcSession[Any], rooms: Iterable[Any]) -> list[Effect]:
    """AWAY to each IRC user with away-notify who shares one of ``rooms`` (this server's)."""
    profile = s.info.profiles.get(s.target)
    text = () if profile is None or profile.away is None else (profile.away,)
    data = line("AWAY", *text, source=s.source)
    seen = {id(s.member)}
    effects: list[Effect] = []
    for room in rooms:
        for member in room.members:
            other = s.info.profiles.get(member.nick) if member.nick and id(member) not in seen else None
            seen.add(id(member))
            if other is not None and "away-notify" in other.caps:
                effects.append(Send(data, member))
    return effects


def _mode(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    target = p[0]
    if target.startswith("#"):
        room = s.registry.room(target[1:])
        if room is None:
            return [s.reply(n.ERR_NOSUCHCHANNEL, target, "No such channel")]
        return [s.reply(n.RPL_CHANNELMODEIS, f"#{room.name}", "+nt")]
    if s.registry.nick_of(target) is None:
        return [s.reply(n.ERR_NOSUCHNICK, target, "No such nick/channel")]
    if s.registry.nick_of(target) != s.nick:
        return [s.reply(n.ERR_USERSDONTMATCH, "Cannot change mode for other users")]
    profile = s.info.profiles.get(s.target)
    assert profile is not None
    if len(p) < 2:
        return [s.reply(n.RPL_UMODEIS, "+" + "".join(sorted(profile.modes)))]
    return _user_modes(s, profile.modes, p[1])


def _user_modes(s: IrcSession[Any], modes: set[str], changes: str) -> list[Effect]:
    sign, applied = "+", ""
    effects: list[Effect] = []
    for ch in changes:
        if ch in "+-":
            sign = ch
        elif ch == "i":
            if (sign == "+") != ("i" in modes):
                (modes.add if sign == "+" else modes.discard)("i")
                applied += sign + ch
        elif ch == "o" and sign == "-" and "o" in modes:
            modes.discard("o")
            applied += "-o"
        elif ch != "o":
            effects.append(s.reply(n.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag"))
    if applied:
        effects.insert(0, Send(line("MODE", s.target, applied, source=s.source)))
    return effects


# -- about the server ---------------------------------------------------------------------


def lusers(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    users = s.registry.users_online()
    invisible = s.info.profiles.invisible()
    rooms = len(s.registry.rooms())
    peak = s.info.profiles.peak(users)
    return [
        s.reply(
            n.RPL_LUSERCLIENT, f"There are {users - invisible} users and {invisible} invisible on 1 servers"
        ),
        s.reply(n.RPL_LUSEROP, str(s.info.profiles.opers()), "operator(s) online"),
        s.reply(n.RPL_LUSERCHANNELS, str(rooms), "channels formed"),
        s.reply(n.RPL_LUSERME, f"I have {users} clients and 0 servers"),
        s.reply(n.RPL_LOCALUSERS, str(users), str(peak), f"Current local users {users}, max {peak}"),
        s.reply(n.RPL_GLOBALUSERS, str(users), str(peak), f"Current global users {users}, max {peak}"),
    ]


def motd(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    text = s.info.motd
    if text is None:
        return [s.reply(n.ERR_NOMOTD, "MOTD File is missing")]
    return [
        s.reply(n.RPL_MOTDSTART, f"- {s.info.name} Message of the day - "),
        *(s.reply(n.RPL_MOTD, f"- {row}") for row in text),
        s.reply(n.RPL_ENDOFMOTD, "End of /MOTD command."),
    ]


def _version(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    from .isupport import isupport_lines

    assert s.nick is not None
    return [
        s.reply(n.RPL_VERSION, s.info.version, s.info.name, "gevent-chat"),
        Send(b"".join(isupport_lines(s.info.name, s.nick, s.info.network))),
    ]


def _info(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return [
        s.reply(n.RPL_INFO, f"{s.info.version}: a chat server for line clients, browsers and IRC"),
        s.reply(n.RPL_INFO, "https://github.com/progval/irctest checks its IRC side"),
        s.reply(n.RPL_ENDOFINFO, "End of /INFO list"),
    ]


def _time(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    now = s.info.clock()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
    return [s.reply(n.RPL_TIME, s.info.name, text)]


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
    "JOIN": (_join, 1),
    "PART": (_part, 1),
    "NAMES": (_names, 0),
    "LIST": (_list, 0),
    "WHO": (_who, 0),
    "WHOIS": (_whois, 1),
    "WHOWAS": (_whowas, 1),
    "ISON": (_ison, 1),
    "USERHOST": (_userhost, 1),
    "AWAY": (_away, 0),
    "MODE": (_mode, 1),
    "LUSERS": (lusers, 0),
    "MOTD": (motd, 0),
    "VERSION": (_version, 0),
    "TIME": (_time, 0),
    "INFO": (_info, 0),
}
