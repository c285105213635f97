"""One user's conversation with the server, from connect to close.

PURE, in h11's shape: the shell feeds framed lines in, and gets ``Effect``
values back; nothing here does I/O, reads a clock or knows the transport.
A session goes through three states:

1. the gate (``Gate``): an HTTP probe, the server password, the line cap;
2. registration: each line is a nickname to try, until one is free;
3. chat: lines go to the room, ``/commands`` run from the command table.

A closed session (``/quit``, a gate refusal) ignores whatever follows.  The
session is the one owner of the user's nick and room: commands that change
them report it through ``Renamed`` and ``Moved``, which the session applies
to itself before passing them on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from . import chat, commands, lines, protocol
from .effects import Close, Effect, Moved, Pause, Registered, Renamed, Reply, Send, ToRoom
from .errors import ClientError, Moderated, OperFailed, ServerBanned
from .events import Joined, Kicked
from .gate import Gate, Verdict
from .names import name_key
from .registry import Registry
from .rooms import DEFAULT_ROOM, Room

__all__ = ["SERVER_BANNED", "Session"]

#: Why registration was refused to a server-banned user (a label of the refused-connections metric).
SERVER_BANNED = "server_ban"

M = TypeVar("M")


class Session(Generic[M]):
    """The state of one user; ``member`` is what the registry holds for them."""

    __slots__ = (
        "address",
        "clock",
        "closed",
        "gate",
        "max_line_bytes",
        "member",
        "nick",
        "oper",
        "registry",
        "room",
    )

    def __init__(
        self,
        member: M,
        registry: Registry[M],
        gate: Gate,
        max_line_bytes: int,
        address: str | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        """``address`` is the peer's (for bans); ``clock`` gives seconds since
        the epoch for what the room remembers, such as when a topic was set."""
        self.member = member
        self.registry = registry
        self.address = address
        self.clock = clock
        #: The server operator name this user holds after ``/oper``; None: an ordinary user.
        self.oper: str | None = None
        #: Until registration; None after.
        self.gate: Gate | None = gate
        self.max_line_bytes = max_line_bytes
        self.nick: str | None = None
        self.room: Room[M] | None = None
        self.closed = False

    def opening(self) -> list[Effect]:
        """What to send on connect: the first prompt."""
        assert self.gate is not None
        return [Send(self.gate.opening(), lines=0)]

    def receive(self, lines: list[bytes | None]) -> list[Effect]:
        """Act on received lines in order (``None``: a line over the limit).

        Consecutive chat lines become one ``Said``, so a chunk of chat costs
        one fan-out.
        """
        effects: list[Effect] = []
        batch: list[bytes] = []
        for line in lines:
            if self.closed:
                break
            if self.nick is not None and line is not None and line[:1] != b"/":
                # The hot path: a chat line.
                if protocol.is_clean_ascii(line):
                    if line.strip():
                        batch.append(line)
                else:
                    text = protocol.clean_text(line)
                    if not protocol.is_blank(text):
                        batch.append(text.encode())
                continue
            if batch:
                effects.append(self._say(batch))
                batch = []
            if line is None:
                effects += self._too_long()
            elif self.nick is None:
                effects += self._register(line)
            else:
                effects += self._command(line.decode("utf-8", "replace"))
        if batch:
            effects.append(self._say(batch))
        return effects

    def _say(self, batch: list[bytes]) -> Effect:
        assert self.room is not None
        assert self.nick is not None
        try:
            return chat.say(self.room, self.nick, batch, oper=self.oper is not None)
        except Moderated as err:  # nobody receives the lines
            return Reply(str(err))

    def _too_long(self) -> list[Effect]:
        error = protocol.notice(f"error: line too long (limit {self.max_line_bytes} bytes)")
        if self.nick is not None:
            return [Send(error)]
        assert self.gate is not None
        verdict = self.gate.overlong()
        if verdict is not None:
            return self._refuse(verdict)
        # It was a (far too long) password or nickname: ask again for what is expected.
        return [Send(error + self.gate.opening())]

    def _refuse(self, verdict: Verdict) -> list[Effect]:
        """Carry out a gate verdict that is not a nickname to try."""
        effects: list[Effect] = []
        if verdict.delay:
            effects.append(Pause(verdict.delay))
        if verdict.reply:
            effects.append(Send(verdict.reply, lines=verdict.reply.count(b"\n")))
        if verdict.close is not None:
            self.closed = True
            effects.append(Close(verdict.close.replace("_", " "), refusal=verdict.close))
        return effects

    def _register(self, line: bytes) -> list[Effect]:
        """The gate's verdict on ``line``, then (if it is a nickname) registration."""
        assert self.gate is not None
        verdict = self.gate.check(line)
        if not verdict.is_nick:
            return self._refuse(verdict)
        try:
            nick = protocol.validate_nick(line.decode("utf-8", "replace"))
            ban = self.registry.server_bans.matching(nick, self.address)
            if ban is not None:
                self.closed = True
                refusal = protocol.notice(str(ServerBanned(ban.reason)))
                return [Send(refusal), Close("banned from the server", refusal=SERVER_BANNED)]
            room = self.registry.add(nick, self.member)
        except ClientError as err:
            # One entry: the outbox bounds entries, ``pending`` counts lines.
            return [Send(protocol.notice(str(err)) + protocol.NICK_PROMPT)]
        assert room is not None
        self.nick, self.room = nick, room
        self.gate = None  # registered: the gate has no more to say, so it is not kept
        n = self.registry.users_online()
        return [
            Registered(nick),
            Reply(f"Welcome, {nick}! {n} user{'s' if n != 1 else ''} online"),
            *commands.history(room, self.registry),
            *commands.topic(room),
            ToRoom(room, Joined(room.name, nick)),
        ]

    def _command(self, text: str) -> list[Effect]:
        if text.startswith("//"):  # an escaped slash: chat, not a command
            return [self._say([protocol.sanitise(text[1:]).encode()])]
        assert self.nick is not None
        assert self.room is not None
        ctx = commands.Context(
            self.nick,
            self.member,
            self.room,
            self.registry,
            address=self.address,
            oper=self.oper is not None,
            when=self.clock(),
        )
        effects = commands.run(text, ctx)
        for effect in effects:
            if isinstance(effect, Renamed):
                self.nick = effect.nick
            elif isinstance(effect, Moved):
                self.room = effect.room
            elif isinstance(effect, Close):
                self.closed = True
        return effects

    def force_rename(self, new: str, why: str) -> list[Effect]:
        """Rename the user on the server's initiative (``why`` tells them); raises ``ClientError``.

        For a nick another server took while this one was cut off.
        """
        old = self.nick
        if old is None or self.closed:
            return []
        seen = chat.rename(self.registry, old, new)
        self.nick = new
        return [Renamed(new, old), Reply(f"{why}; you are now known as {new}"), *seen]

    def removed(self, event: Kicked) -> list[Effect]:
        """``event`` kicked this user: tell them, and move them to the lobby if it was their room.

        A line user is always in a room; the lobby keeps nobody out.
        """
        if self.nick is None or self.closed:
            return []
        effects: list[Effect] = [Send(lines.kicked_you(event))]
        if self.room is None or name_key(self.room.name) != name_key(event.room):
            return effects
        lobby = self.registry.join(self.nick, DEFAULT_ROOM)
        self.room = lobby
        return [
            *effects,
            Moved(lobby),
            Reply(f"you joined #{lobby.name}"),
            *commands.history(lobby, self.registry),
            *commands.topic(lobby),
            ToRoom(lobby, Joined(lobby.name, self.nick)),
        ]

    def opered(self, name: str | None, exhausted: bool = False) -> list[Effect]:
        """The answer to ``/oper``: ``name`` is the operator name the password proved, or None.

        ``exhausted``: the address used up its password failures, so nothing was checked.
        """
        if exhausted:
            return [Reply("too many failed attempts from your address; try again later")]
        if name is None:
            return [Reply(str(OperFailed()))]
        self.oper = name
        return [Reply("you are now a server operator")]

    def leave(self, reason: str | None) -> list[Effect]:
        """Leave the registry as the connection ends; what the rooms see, if anything."""
        self.closed = True
        if self.nick is None:
            return []
        return chat.quit(self.registry, self.nick, reason)
