"""The line protocol's commands that run rooms and the server: ``/topic``, ``/kick``, ``/oper``...

PURE.  Each handler parses its words and calls the shared operation
(``core.moderation``, the room rules in ``core.roomstate``), then answers
in the line protocol's words: the caller sees the event rendered as the
room does (``ToRoom`` skips the caller).  A refusal is a ``ClientError``,
which ``commands.run`` turns into one ``*** `` line; nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import lines, moderation
from .effects import Authenticate, Disconnect, Effect, Reply, Send
from .errors import NoSuchNick, NotServerOperator
from .events import Event
from .protocol import sanitise
from .serverbans import ServerBan

if TYPE_CHECKING:
    from .commands import Context

__all__ = ["HANDLERS", "banned_off", "killed"]

Handler = Callable[["Context[Any]", list[str]], list[Effect]]


def _echo(event: Event | None, effects: list[Effect], unchanged: str) -> list[Effect]:
    """The caller's copy of what the room sees, then the room's; ``unchanged`` if nothing changed."""
    if event is None:
        return [Reply(unchanged), *effects]
    return [Send(lines.render(event)), *effects]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def topic(ctx: Context[Any], args: list[str]) -> list[Effect]:
    room = ctx.room
    if not args:
        shown = room.state.topic
        if shown is None:
            return [Reply(f"#{room.name} has no topic")]
        return [Send(lines.topic_line(shown.text, shown.nick))]
    event, effects = moderation.set_topic(ctx.registry, ctx.nick, room.name, args[0], ctx.when, ctx.oper)
    return _echo(event, effects, "")


def _modes(ctx: Context[Any], words: list[str], unchanged: str) -> list[Effect]:
    event, effects = moderation.change_modes(ctx.registry, ctx.nick, ctx.room.name, words, ctx.when, ctx.oper)
    return _echo(event, effects, unchanged)


def _status(sign: str, letter: str, unchanged: str) -> Handler:
    """``/op``, ``/deop``, ``/voice``, ``/devoice``: one mode change on a member."""

    def handler(ctx: Context[Any], args: list[str]) -> list[Effect]:
        return _modes(ctx, [sign + letter, args[0]], unchanged.format(nick=sanitise(args[0])))

    return handler


def kick(ctx: Context[Any], args: list[str]) -> list[Effect]:
    reason = args[1] if len(args) > 1 else None
    event, effects = moderation.kick(ctx.registry, ctx.nick, ctx.room.name, args[0], reason, ctx.oper)
    return _echo(event, effects, "")


def ban(ctx: Context[Any], args: list[str]) -> list[Effect]:
    return _modes(ctx, ["+b", args[0]], f"{sanitise(args[0])} is already banned in #{ctx.room.name}")


def unban(ctx: Context[Any], args: list[str]) -> list[Effect]:
    return _modes(ctx, ["-b", args[0]], f"{sanitise(args[0])} is not banned in #{ctx.room.name}")


def bans(ctx: Context[Any], args: list[str]) -> list[Effect]:
    held = ctx.room.state.bans
    if not held:
        return [Reply(f"no bans in #{ctx.room.name}")]
    names = [f"{b.mask.text} (by {b.nick})" for b in held]
    return [Reply(t) for t in lines.listing(f"{_plural(len(held), 'ban')} in #{ctx.room.name}: ", names)]


def mode(ctx: Context[Any], args: list[str]) -> list[Effect]:
    if not args:
        return [Reply(f"#{ctx.room.name} modes: {' '.join(ctx.room.state.mode_words())}")]
    if args == ["+b"]:
        return bans(ctx, [])
    return _modes(ctx, args, "no mode changed")


def invite(ctx: Context[Any], args: list[str]) -> list[Effect]:
    event, effects = moderation.invite(ctx.registry, ctx.nick, ctx.room.name, args[0], ctx.oper)
    return [Reply(f"you invited {event.nick} to #{event.room}"), *effects]


# -- server operators ----------------------------------------------------------------


def oper(ctx: Context[Any], args: list[str]) -> list[Effect]:
    if ctx.oper:
        return [Reply("you are already a server operator")]
    return [Authenticate(args[0], args[1])]


def _require_oper(ctx: Context[Any]) -> None:
    if not ctx.oper:
        raise NotServerOperator


def kill(ctx: Context[Any], args: list[str]) -> list[Effect]:
    _require_oper(ctx)
    reason = sanitise(args[1]).strip()[:300] if len(args) > 1 else ""
    target = ctx.registry.get(args[0])
    if target is None:  # maybe on another server, which disconnects them when told
        if ctx.registry.kill_elsewhere(args[0], reason) is not True:
            raise NoSuchNick(sanitise(args[0]))
        return [Reply(f"you disconnected {sanitise(args[0])}")]
    nick = ctx.registry.nick_of(args[0]) or args[0]
    return [killed(target, reason), Reply(f"you disconnected {nick}")]


def killed(member: Any, reason: str) -> Disconnect:
    """What disconnects ``member`` for ``/kill`` (here, or told by the server the operator is on)."""
    why = f" ({reason})" if reason else ""
    return Disconnect(
        member,
        f"you were disconnected by an operator{why}",
        _reason("disconnected by an operator", reason),
    )


def _reason(what: str, reason: str | None) -> str:
    return f"{what}: {reason}" if reason else what


def banned_off(registry: Any, ban: ServerBan, spare: Any = None) -> list[Effect]:
    """Disconnect the users here that the server ban ``ban`` matches (``spare`` aside)."""
    why = f" ({ban.reason})" if ban.reason else ""
    effects: list[Effect] = []
    for member in registry:
        nick = getattr(member, "nick", None)
        if member is spare or nick is None:
            continue
        if ban.mask.matches(nick, getattr(member, "address", None)):
            text = f"you are banned from this server{why}"
            effects.append(Disconnect(member, text, _reason("banned from the server", ban.reason)))
    return effects


def gban(ctx: Context[Any], args: list[str]) -> list[Effect]:
    _require_oper(ctx)
    registry = ctx.registry
    reason = args[1] if len(args) > 1 else None
    registry.server_bans, added = registry.server_bans.add(args[0], ctx.nick, reason, ctx.when)
    registry.share_server_ban(added, True)  # the other servers disconnect whom it matches there
    effects = banned_off(registry, added, ctx.member)
    n = len(effects)
    done = f"banned {added.mask.text} from the server; {_plural(n, 'user')} disconnected"
    return [*effects, Reply(done)]


def gunban(ctx: Context[Any], args: list[str]) -> list[Effect]:
    _require_oper(ctx)
    ctx.registry.server_bans, lifted = ctx.registry.server_bans.remove(args[0])
    ctx.registry.share_server_ban(lifted, False)
    return [Reply(f"lifted the server ban on {lifted.mask.text}")]


def gbans(ctx: Context[Any], args: list[str]) -> list[Effect]:
    _require_oper(ctx)
    held = ctx.registry.server_bans.bans
    if not held:
        return [Reply("no server bans")]
    names = [f"{b.mask.text} (by {b.nick}{': ' + b.reason if b.reason else ''})" for b in held]
    return [Reply(t) for t in lines.listing(f"{_plural(len(held), 'server ban')}: ", names)]


#: name -> (handler, minimum arguments, usage, words before free text or None, what it does in detail)
HANDLERS: dict[str, tuple[Handler, int, str, int | None, str]] = {
    "topic": (
        topic,
        0,
        "/topic [TEXT]: show or set your room's topic",
        0,
        "Under +t (the default) only operators set it; an empty topic clears it.",
    ),
    "op": (
        _status("+", "o", "{nick} is already an operator"),
        1,
        "/op NICK: make NICK an operator of your room (operators)",
        None,
        "Operators set the topic, change modes, kick, ban and invite.",
    ),
    "deop": (
        _status("-", "o", "{nick} is not an operator"),
        1,
        "/deop NICK: take NICK's operator status (operators)",
        None,
        "",
    ),
    "voice": (
        _status("+", "v", "{nick} already has a voice"),
        1,
        "/voice NICK: let NICK speak in a moderated room (operators)",
        None,
        "",
    ),
    "devoice": (
        _status("-", "v", "{nick} has no voice"),
        1,
        "/devoice NICK: take NICK's voice (operators)",
        None,
        "",
    ),
    "kick": (
        kick,
        1,
        "/kick NICK [REASON]: remove NICK from your room (operators)",
        1,
        "The kicked user is sent to #lobby and may come back unless banned.",
    ),
    "ban": (
        ban,
        1,
        "/ban MASK: keep MASK out of your room, kicking members it matches (operators)",
        0,
        "A MASK is a nick (look-alikes included), a glob such as bob*, or NICK@ADDRESS such as *@203.0.113.*",
    ),
    "unban": (unban, 1, "/unban MASK: lift a ban (operators)", 0, ""),
    "bans": (bans, 0, "/bans: list your room's bans", None, ""),
    "mode": (
        mode,
        0,
        "/mode [CHANGES]: show or change your room's modes, e.g. /mode +m -t +k KEY +l 50 (operators)",
        None,
        "+t topic by operators, +m moderated, +i invite only, +s secret, +k KEY, +l N, +o/+v NICK, +b MASK.",
    ),
    "invite": (
        invite,
        1,
        "/invite NICK: invite NICK to your room (operators, in a +i room)",
        None,
        "An invitation lets NICK in once past +i, +k and +l, never past a ban.",
    ),
    "oper": (oper, 2, "/oper NAME PASSWORD: become a server operator", 1, ""),
    "kill": (
        kill,
        1,
        "/kill NICK [REASON]: disconnect NICK (server operators)",
        1,
        "",
    ),
    "gban": (
        gban,
        1,
        "/gban MASK [REASON]: ban MASK from the server, disconnecting who it matches (server operators)",
        1,
        "",
    ),
    "gunban": (gunban, 1, "/gunban MASK: lift a server ban (server operators)", None, ""),
    "gbans": (gbans, 0, "/gbans: list the server bans (server operators)", None, ""),
}
