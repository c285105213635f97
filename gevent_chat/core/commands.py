"""Slash commands: parse a line, run a handler, return effects.

PURE.  A handler reads and changes the registry (itself pure) and returns a
list of ``Effect`` values (``effects``) saying what to send to whom; the
session passes them on and the hub carries them out.  The command table is
data, as in ergo's ``commands.go``: name -> handler, minimum argument count,
usage line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import chat, lines, protocol, roomcommands
from .effects import Close, Effect, Moved, Renamed, Reply, Send
from .errors import ClientError
from .events import Kind
from .registry import Registry
from .rooms import Room

__all__ = ["COMMANDS", "Context", "history", "run", "topic"]

M = TypeVar("M")

#: Nicks or rooms per ``/who`` or ``/rooms`` line, so one reply line stays short.
NAMES_PER_LINE = 30


@dataclass
class Context(Generic[M]):
    """What a handler may know about its caller and the server."""

    nick: str
    member: M
    room: Room[M]
    registry: Registry[M]
    #: The caller's network address (for address bans), if known.
    address: str | None = None
    #: The caller is a server operator.
    oper: bool = False
    #: Now, in seconds since the epoch, from the session's clock.
    when: float = 0.0


Handler = Callable[[Context[Any], list[str]], list[Effect]]


@dataclass(frozen=True)
class Command:
    handler: Handler
    min_args: int
    usage: str
    #: How many words come before the free text (the rest of the line is the
    #: last argument); None when there is no free text.
    rest: int | None
    #: More than the usage line, for ``/help COMMAND``.
    detail: str = ""


def run(line: str, ctx: Context[Any]) -> list[Effect]:
    """Run the command on ``line`` (which starts with ``/``).

    ``line`` is decoded but not yet sanitised: names (nicks, rooms) are
    checked as typed, and handlers sanitise the free text they relay.
    """
    name, _, tail = line[1:].partition(" ")
    command = COMMANDS.get(name.casefold())
    if command is None:
        return [Reply(f"unknown command: /{protocol.sanitise(name)} (try /help)")]
    args = tail.split() if command.rest is None else tail.split(None, command.rest)
    if len(args) < command.min_args:
        return [Reply(f"usage: {command.usage}")]
    try:
        return command.handler(ctx, args)
    except ClientError as err:
        return [Reply(str(err))]


def _lines(prefix: str, names: list[str]) -> list[Effect]:
    """``*** prefix a, b, c`` split so that no line lists too many names."""
    return [Reply(text) for text in lines.listing(prefix, names, NAMES_PER_LINE)]


def _help(ctx: Context[Any], args: list[str]) -> list[Effect]:
    if args:
        name = args[0].removeprefix("/").casefold()
        command = COMMANDS.get(name)
        if command is None:
            return [Reply(f"no such command: /{protocol.sanitise(name)} (try /help)")]
        return [Reply(command.usage), *([Reply(command.detail)] if command.detail else [])]
    effects: list[Effect] = [Reply(c.usage) for c in COMMANDS.values()]
    return [*effects, Reply("//text sends a line starting with /; /help COMMAND explains one")]


def _who(ctx: Context[Any], args: list[str]) -> list[Effect]:
    nicks = ctx.registry.who(ctx.room)
    if nicks is None:  # this server alone (or it cannot reach the others)
        nicks = [m.nick for m in ctx.room.members]
    nicks = sorted(nicks, key=protocol.name_key)  # the same order from every source
    n = len(nicks)
    state = ctx.room.state
    marked = [("@" if state.is_operator(x) else "+" if state.is_voiced(x) else "") + x for x in nicks]
    return _lines(f"{n} user{'s' if n != 1 else ''} in #{ctx.room.name}: ", marked)


def _rooms(ctx: Context[Any], args: list[str]) -> list[Effect]:
    counts = ctx.registry.room_counts()
    if counts is None:  # this server alone (or it cannot reach the others)
        counts = {r.name: len(r.members) for r in ctx.registry.rooms()}
    # A secret room (+s) is listed to its own members only.
    hidden = {
        protocol.name_key(r.name)
        for r in ctx.registry.rooms()
        if r.state.is_secret() and not ctx.registry.is_in(ctx.nick, r.name)
    }
    names = sorted((n for n in counts if protocol.name_key(n) not in hidden), key=protocol.name_key)
    n = len(names)
    effects = _lines(f"{n} room{'s' if n != 1 else ''}: ", [f"#{name} ({counts[name]})" for name in names])
    for name in names:
        room = ctx.registry.room(name)
        if room is not None and room.state.topic is not None:
            effects.append(Reply(f"#{room.name}: {room.state.topic.text}"))
    return effects


def _nick(ctx: Context[Any], args: list[str]) -> list[Effect]:
    new = protocol.validate_nick(args[0])
    old = ctx.nick
    if new == old:
        return [Reply(f"you are already known as {new}")]
    seen = chat.rename(ctx.registry, old, new)
    return [Renamed(new, old), Reply(f"you are now known as {new}"), *seen]


def _msg(ctx: Context[Any], args: list[str]) -> list[Effect]:
    target, text = args[0], protocol.sanitise(args[1])
    spelled, effects = chat.private(ctx.registry, ctx.nick, target, text)
    return [*effects, Send(lines.private_echo(spelled, text))]


def _me(ctx: Context[Any], args: list[str]) -> list[Effect]:
    return [chat.say(ctx.room, ctx.nick, [protocol.sanitise(args[0]).encode()], Kind.ME)]


def _join(ctx: Context[Any], args: list[str]) -> list[Effect]:
    key = args[1] if len(args) > 1 else None
    _, new, seen = chat.move(ctx.registry, ctx.nick, args[0], key=key, address=ctx.address, oper=ctx.oper)
    # The joiner's own lines first: delivering a notice may wait for a full
    # recipient, and a line said in the new room meanwhile must come after
    # the history, not before it (and again inside it).
    return [Moved(new), Reply(f"you joined #{new.name}"), *history(new, ctx.registry), *topic(new), *seen]


def topic(room: Room[Any]) -> list[Effect]:
    """The room's topic as shown to a user joining it (nothing without one)."""
    shown = room.state.topic
    return [] if shown is None else [Send(lines.topic_line(shown.text, shown.nick))]


def history(room: Room[Any], registry: Registry[Any] | None = None) -> list[Effect]:
    """The room's remembered lines (the cluster's, given a ``registry``), each marked with its time,
    as one send."""
    entries = room.history if registry is None else registry.history_of(room)
    if not entries:
        return []
    data, n = lines.history(entries)
    return [Send(data, None, n)]


def _ping(ctx: Context[Any], args: list[str]) -> list[Effect]:
    return [Reply(f"pong {protocol.sanitise(args[0])}" if args else "pong")]


def _quit(ctx: Context[Any], args: list[str]) -> list[Effect]:
    return [Reply("bye"), Close(protocol.sanitise(args[0]) if args else None)]


COMMANDS: dict[str, Command] = {
    "help": Command(_help, 0, "/help: list the commands", None),
    "who": Command(_who, 0, "/who: list the users in your room", None),
    "nick": Command(_nick, 1, "/nick NEW: change your nickname", 0),
    "msg": Command(_msg, 2, "/msg NICK TEXT: send a private message", 1),
    "me": Command(_me, 1, "/me TEXT: describe an action", 0),
    "join": Command(_join, 1, "/join ROOM [KEY]: move to ROOM (created if new; KEY for a +k room)", None),
    "rooms": Command(_rooms, 0, "/rooms: list the rooms and their sizes", None),
    "ping": Command(_ping, 0, "/ping [TOKEN]: get *** pong TOKEN back, after what is queued", 0),
    "quit": Command(_quit, 0, "/quit [REASON]: leave the chat", 0),
    **{
        name: Command(handler, min_args, usage, rest, detail)
        for name, (handler, min_args, usage, rest, detail) in roomcommands.HANDLERS.items()
    },
}
