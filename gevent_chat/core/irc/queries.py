"""IRC's questions and personal settings: NAMES, LIST, WHO, WHOIS, WHOWAS, ISON, USERHOST,
AWAY, SETNAME and user modes.

PURE.  These read the registry and the profiles; they change no room.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..effects import Effect, Send
from ..names import casefold
from ..protocol import sanitise
from . import channels
from . import numerics as n
from .message import line

if TYPE_CHECKING:
    from .session import IrcSession


#: Nicks per RPL_NAMREPLY line, so the line stays under 512 bytes.
NAMES_PER_LINE = 12
#: The longest real name kept (ergo's default ``realnamelen``).
REALNAME_CHARS = 150


def _prefixes(s: IrcSession[Any], room: Any, nick: str) -> str:
    """The status prefixes of ``nick`` in ``room`` (all with multi-prefix, else the highest)."""
    state = room.state
    marks = ("@" if state.is_operator(nick) else "") + ("+" if state.is_voiced(nick) else "")
    return marks if "multi-prefix" in s.caps else marks[:1]


def _can_see(s: IrcSession[Any], room: Any) -> bool:
    """A secret room is seen only by its members and server operators."""
    return not room.state.is_secret() or s.is_oper or s.registry.is_in(s.target, room.name)


def names_of(s: IrcSession[Any], name: str, asked: str | None = None) -> list[Effect]:
    """RPL_NAMREPLY lines and RPL_ENDOFNAMES for the room ``name`` (``asked``: as the client wrote it)."""
    room = s.registry.room(name)
    if room is None or not _can_see(s, room):
        return [s.reply(n.RPL_ENDOFNAMES, asked or f"#{name}", "End of /NAMES list")]
    full = "userhost-in-names" in s.caps
    render = s.renderer.source if full else (lambda nick: nick)
    shown = [_prefixes(s, room, m.nick) + render(m.nick) for m in room.members if m.nick]
    kind = "@" if room.state.is_secret() else "="
    effects: list[Effect] = [
        s.reply(n.RPL_NAMREPLY, kind, f"#{room.name}", " ".join(shown[i : i + NAMES_PER_LINE]))
        for i in range(0, len(shown), NAMES_PER_LINE)
    ]
    effects.append(s.reply(n.RPL_ENDOFNAMES, f"#{room.name}", "End of /NAMES list"))
    return effects


def names(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    if not p:
        return [s.reply(n.RPL_ENDOFNAMES, "*", "End of /NAMES list")]
    effects: list[Effect] = []
    for target in p[0].split(","):
        effects += names_of(s, target[1:], target) if target.startswith("#") else names_of(s, "", target)
    return effects


def list_rooms(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    wanted = {t.removeprefix("#").casefold() for t in p[0].split(",")} if p and p[0] else None
    effects: list[Effect] = [s.reply(n.RPL_LISTSTART, "Channel", "Users  Name")]
    for room in s.registry.rooms():
        if (wanted is None or room.name.casefold() in wanted) and _can_see(s, room):
            topic = room.state.topic.text if room.state.topic is not None else ""
            effects.append(s.reply(n.RPL_LIST, f"#{room.name}", str(len(room.members)), topic))
    effects.append(s.reply(n.RPL_LISTEND, "End of /LIST"))
    return effects


def _who_line(s: IrcSession[Any], room: Any, nick: str) -> Send:
    """RPL_WHOREPLY for ``nick`` as seen in ``room`` (None: in no room the caller may see)."""
    profile = s.info.profiles.get(nick)
    user, host, real = (
        (profile.user, profile.cloak, profile.realname) if profile else (nick, s.info.name, nick)
    )
    flags = "G" if profile is not None and profile.away is not None else "H"
    if profile is not None and "o" in profile.modes:
        flags += "*"
    if room is not None:
        flags += _prefixes(s, room, nick)
    channel = "*" if room is None else f"#{room.name}"
    return s.reply(n.RPL_WHOREPLY, channel, user, host, s.info.name, nick, flags, f"0 {real}")


def _visible(s: IrcSession[Any], nick: str) -> bool:
    """Whether the caller may see ``nick`` in a WHO by mask: not +i, or sharing a room."""
    profile = s.info.profiles.get(nick)
    if profile is None or "i" not in profile.modes or nick == s.nick:
        return True
    mine = {id(r) for r in s.registry.rooms_of(s.target)}
    return any(id(r) in mine for r in s.registry.rooms_of(nick))


def who(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    mask = p[0] if p else "*"
    effects: list[Effect] = []
    if mask.startswith("#"):
        room = s.registry.room(mask[1:])
        if room is not None and _can_see(s, room):
            effects += [_who_line(s, room, m.nick) for m in room.members if m.nick]
    else:
        pattern = casefold(mask)
        for member in s.registry:
            nick = member.nick
            exact = not any(c in mask for c in "*?")  # a user named in full is found, +i or not
            if nick is not None and fnmatchcase(casefold(nick), pattern) and (exact or _visible(s, nick)):
                rooms = [r for r in s.registry.rooms_of(nick) if _can_see(s, r)]
                effects.append(_who_line(s, rooms[0] if rooms else None, nick))
    effects.append(s.reply(n.RPL_ENDOFWHO, mask, "End of WHO list"))
    return effects


def whois(s: IrcSession[Any], p: list[str]) -> list[Effect]:
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
    rooms = [_prefixes(s, r, nick) + f"#{r.name}" for r in s.registry.rooms_of(nick) if _can_see(s, r)]
    if rooms:
        effects.append(s.reply(n.RPL_WHOISCHANNELS, nick, " ".join(rooms)))
    effects.append(s.reply(n.RPL_WHOISSERVER, nick, s.info.name, s.info.network))
    if profile is not None and profile.away is not None:
        effects.append(s.reply(n.RPL_AWAY, nick, profile.away))
    if profile is not None and "o" in profile.modes:
        effects.append(s.reply(n.RPL_WHOISOPERATOR, nick, "is an IRC operator"))
    if profile is not None and (s.is_oper or nick == s.nick):  # the real address, behind the cloak
        effects.append(s.reply(n.RPL_WHOISHOST, nick, f"is connecting from *@{profile.host} {profile.host}"))
    if profile is not None:
        effects.append(
            s.reply(n.RPL_WHOISIDLE, nick, "0", str(int(profile.signon)), "seconds idle, signon time")
        )
    effects.append(s.reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list"))
    return effects


def whowas(s: IrcSession[Any], p: list[str]) -> list[Effect]:
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


def ison(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    present = [s.registry.nick_of(nick) for arg in p for nick in arg.split()]
    return [s.reply(n.RPL_ISON, " ".join(x for x in present if x))]


def userhost(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    found = []
    for nick in p[:5]:
        held = s.registry.nick_of(nick)
        if held is not None:
            profile = s.info.profiles.get(held)
            away = "-" if profile is not None and profile.away is not None else "+"
            mask = s.renderer.source(held).partition("!")[2]
            found.append(f"{held}={away}{mask}")
    return [s.reply(n.RPL_USERHOST, " ".join(found))]


def away(s: IrcSession[Any], p: list[str]) -> list[Effect]:
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
    return _to_mates(s, rooms, "away-notify", line("AWAY", *text, source=s.source))


def _to_mates(s: IrcSession[Any], rooms: Iterable[Any], cap: str, data: bytes) -> list[Effect]:
    """``data`` to each IRC user of this server sharing one of ``rooms`` who negotiated ``cap``."""
    seen = {id(s.member)}
    effects: list[Effect] = []
    for room in rooms:
        for member in room.members:
            other = s.info.profiles.get(member.nick) if member.nick and id(member) not in seen else None
            seen.add(id(member))
            if other is not None and cap in other.caps:
                effects.append(Send(data, member))
    return effects


def setname(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    """IRCv3 setname: a new real name, told to the caller and room mates that asked for it."""
    profile = s.info.profiles.get(s.target)
    assert profile is not None
    realname = sanitise(p[0])[:REALNAME_CHARS]
    if not realname.strip():
        return [
            Send(line("FAIL", "SETNAME", "INVALID_REALNAME", "Realname is not valid", source=s.info.name))
        ]
    profile.realname = realname
    data = line("SETNAME", realname, source=s.source)
    mine: list[Effect] = [Send(data)] if "setname" in s.caps else []
    return [*mine, *_to_mates(s, s.registry.rooms_of(s.target), "setname", data)]


def mode(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    target = p[0]
    if target.startswith("#"):
        return channels.chanmode(s, p)
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
