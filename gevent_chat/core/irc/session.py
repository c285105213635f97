"""One IRC client's conversation with the server, from connect to QUIT.

PURE, in the shape of ``core.session``: the shell feeds framed lines in
and gets ``Effect`` values back.  Registration (PASS, NICK, USER, CAP)
happens here; once registered, each command runs its handler from
``handlers.COMMANDS``, which calls the chat's shared operations, so an IRC
user and a line user are held to the same rules.  What the caller itself
sees is rendered here with its own capabilities; what others see leaves as
events.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..effects import Close, Effect, Pause, Registered, Send
from ..errors import ClientError
from ..events import Event, Kicked, Tags
from ..events import Renderer as AnyRenderer
from ..gate import TOO_MANY_LINES, WRONG_PASSWORD, is_http_request
from ..names import validate_nick
from ..protocol import is_clean_ascii, sanitise
from ..registry import Registry
from ..rooms import Room
from ..session import SERVER_BANNED
from . import about, handlers, queries
from . import numerics as n
from .caps import Caps
from .isupport import isupport_lines
from .message import MAX_BODY_BYTES, InputTooLong, escape_tag, line, parse
from .profiles import Profile, Profiles
from .render import Renderer, Renderers

__all__ = ["IrcSession", "ServerInfo"]


class Rendered(Protocol):
    """A member as the IRC session needs it: what renders its events."""

    renderer: AnyRenderer


M = TypeVar("M", bound=Rendered)

#: A user name as USER gave it, kept to these characters and this length (ngircd's 10).
_USER_CHARS = re.compile(r"[^A-Za-z0-9._-]")
USER_CHARS = 10
#: Commands a client may send before it has registered.
_BEFORE_REGISTRATION = frozenset({"PASS", "NICK", "USER", "CAP", "PING", "PONG", "QUIT"})
#: User modes and channel modes this server knows (RPL_MYINFO).
USER_MODES = "io"
CHANNEL_MODES = "biklmnostv"


@dataclass(frozen=True)
class ServerInfo:
    """What every IRC session on one server shares."""

    name: str
    network: str
    version: str
    #: When the server started, as text for RPL_CREATED.
    created: str
    #: Lines of the message of the day; None: there is none (422).
    motd: tuple[str, ...] | None
    profiles: Profiles
    renderers: Renderers
    #: Seconds since the epoch now; the shell passes ``time.time``.
    clock: Callable[[], float]
    password: str | None = None
    password_delay: float = 1.0
    max_unregistered_lines: int = 50
    #: A new IRCv3 ``msgid``, unique across the servers (the shell's; "" for none).
    msgid: Callable[[], str] = lambda: ""


class IrcSession(Generic[M]):
    """The state of one IRC client; ``member`` is what the registry holds for it."""

    def __init__(self, member: M, registry: Registry[M], info: ServerInfo, host: str, cloak: str) -> None:
        self.member = member
        self.registry = registry
        self.info = info
        self.host = host
        self.cloak = cloak
        self.caps = Caps()
        #: The registered nick; None until registration completes.
        self.nick: str | None = None
        self.closed = False
        #: The server operator name proved by OPER; None: an ordinary user.
        self.oper: str | None = None
        self._wanted_nick: str | None = None
        self._user: tuple[str, str] | None = None  # (user, realname) from USER
        self._password: str | None = None
        self._lines = 0  # lines before registering
        self.renderer: Renderer = info.renderers.for_caps(())
        member.renderer = self.renderer
        self._batches = 0
        #: The client-only tags of the message being handled (with message-tags), for PRIVMSG,
        #: NOTICE and TAGMSG to relay; set before each command.
        self.tags: Tags = ()

    # -- what the shell calls ---------------------------------------------------------

    def opening(self) -> list[Effect]:
        """Nothing: an IRC client speaks first."""
        return []

    def receive(self, lines: list[bytes | None]) -> list[Effect]:
        """Act on received lines in order (``None``: a line over the framing limit).

        The hot path: consecutive ``PRIVMSG #room :text`` lines of printable
        ASCII to one room become one ``Said``, so a burst costs one fan-out
        and no tokenising; anything else goes through irctokens.
        """
        effects: list[Effect] = []
        room = b""
        batch: list[bytes] = []
        for raw in lines:
            if self.closed:
                break
            if raw is not None and raw[:9] == b"PRIVMSG #" and self.nick is not None:
                sep = raw.find(b" :", 9)
                if sep > 9 and len(raw) <= MAX_BODY_BYTES and raw[sep + 2 : sep + 3] != b"\x01":
                    target, text = raw[9:sep], raw[sep + 2 :]
                    one_room = b" " not in target and b"," not in target
                    if one_room and is_clean_ascii(raw) and text.strip():
                        if target != room and batch:
                            effects += handlers.say_lines(self, room.decode(), batch)
                            batch = []
                        room = target
                        batch.append(text)
                        continue
            if batch:
                effects += handlers.say_lines(self, room.decode(), batch)
                batch = []
            try:
                if raw is None:
                    raise InputTooLong("input line too long")
                if self.nick is None:
                    effects += self._unregistered(raw)
                    continue
                msg = parse(raw)
                if msg is not None:
                    if not raw.isascii() and not _is_utf8(raw):
                        effects.append(self.warn_utf8(msg.command))
                    self.tags = _client_tags(msg.tags) if msg.tags and "message-tags" in self.caps else ()
                    done = self.dispatch(msg.command, msg.params)
                    if msg.tags and "label" in msg.tags and "labeled-response" in self.caps:
                        done = self._labeled(escape_tag(msg.tags["label"]), done)
                    effects += done
            except InputTooLong:
                effects.append(self.reply(n.ERR_INPUTTOOLONG, "Input line was too long"))
        if batch:
            effects += handlers.say_lines(self, room.decode(), batch)
        return effects

    def _labeled(self, label: str, effects: list[Effect]) -> list[Effect]:
        """IRCv3 labeled-response: this client's own replies to a labeled command, labeled.

        No reply: an ``ACK``; one line: that line labeled; more: a
        ``labeled-response`` batch (with ``batch``), else the first line labeled.
        """
        mine = [i for i, e in enumerate(effects) if isinstance(e, Send) and e.member is None]
        lines = [row + b"\n" for i in mine for row in effects[i].data.split(b"\n")[:-1]]  # type: ignore[union-attr]
        tag, server = f"label={label}", self.info.name
        if not lines:
            return [*effects, Send(line("ACK", source=server, tags=tag))]
        if len(lines) == 1 or "batch" not in self.caps:
            data = _tagged(lines[0], tag) + b"".join(lines[1:])
        else:
            ref = self.batch_id()
            start = line("BATCH", f"+{ref}", "labeled-response", source=server, tags=tag)
            body = b"".join(_tagged(row, f"batch={ref}") for row in lines)
            data = start + body + line("BATCH", f"-{ref}", source=server)
        rest = [e for i, e in enumerate(effects) if i not in mine[1:]]
        rest[mine[0]] = Send(data, None, data.count(b"\n"))
        return rest

    def opered(self, name: str | None, exhausted: bool = False) -> list[Effect]:
        """The answer to OPER: ``name`` is the operator name the password proved, or None.

        ``exhausted``: the address used up its password failures, so nothing was checked.
        """
        if exhausted:
            return [self.reply(n.ERR_PASSWDMISMATCH, "Too many failed attempts, try again later")]
        if name is None or self.nick is None:
            return [self.reply(n.ERR_PASSWDMISMATCH, "Password incorrect")]
        self.oper = name
        profile = self.info.profiles.get(self.nick)
        if profile is not None:
            profile.modes.add("o")
        return [
            self.reply(n.RPL_YOUREOPER, "You are now an IRC operator"),
            Send(line("MODE", self.nick, "+o", source=self.source)),
        ]

    def removed(self, event: Kicked) -> list[Effect]:
        """``event`` kicked this user out of a room: they see the KICK (and stay in no room)."""
        if self.nick is None or self.closed:
            return []
        return [self.own(event)]

    def leave(self, reason: str | None) -> list[Effect]:
        """Leave the chat as the connection ends: others see the quit once."""
        self.closed = True
        if self.nick is None:
            return []
        return handlers.quit_chat(self, reason)

    def force_rename(self, new: str, why: str) -> list[Effect]:
        """Rename the user on the server's initiative; raises ``ClientError``."""
        if self.nick is None or self.closed:
            return []
        return [*handlers.rename(self, validate_nick(new)), self.notice(why)]

    @property
    def is_oper(self) -> bool:
        return self.oper is not None

    @property
    def room(self) -> Room[M] | None:
        """The first room this user joined, if any."""
        rooms = self.registry.rooms_of(self.nick) if self.nick is not None else ()
        return rooms[0] if rooms else None

    # -- helpers for handlers ---------------------------------------------------------

    @property
    def target(self) -> str:
        """How replies address this client: its nick, or ``*`` before it has one."""
        return self.nick or self._wanted_nick or "*"

    def reply(self, code: str, *params: str) -> Send:
        """A numeric reply to this client."""
        return Send(line(code, self.target, *params, source=self.info.name))

    def warn_utf8(self, command: str) -> Send:
        """UTF8ONLY: invalid UTF-8 is replaced (U+FFFD), and the client is told."""
        text = "Invalid UTF-8 was replaced"
        return Send(line("WARN", command, "INVALID_UTF8", text, source=self.info.name))

    def notice(self, text: str) -> Send:
        return Send(line("NOTICE", self.target, text, source=self.info.name))

    def own(self, event: Event, when: float | None = None) -> Send:
        """``event`` as this client sees it (its own JOIN, PART, NICK; an echoed message)."""
        return Send(self.renderer.render(event, self.info.clock() if when is None else when))

    def batch_id(self) -> str:
        self._batches += 1
        return f"h{self._batches}"

    @property
    def source(self) -> str:
        """This user's ``nick!user@host`` as others see it."""
        assert self.nick is not None
        return self.renderer.source(self.nick)

    def error_close(self, text: str, reason: str | None, refusal: str | None = None) -> list[Effect]:
        """``ERROR :text`` and the end of the connection."""
        self.closed = True
        return [Send(line("ERROR", text)), Close(reason, refusal)]

    # -- registration -----------------------------------------------------------------

    def _unregistered(self, raw: bytes) -> list[Effect]:
        self._lines += 1
        if self._lines == 1 and is_http_request(raw):
            return self.error_close("This is an IRC server, not an HTTP server", "http", "http")
        cap = self.info.max_unregistered_lines
        if cap and self._lines > cap:
            return self.error_close("Too many lines before registering", None, TOO_MANY_LINES)
        msg = parse(raw)
        if msg is None:
            return []
        command, params = msg.command, msg.params
        if command not in _BEFORE_REGISTRATION:
            if command in handlers.COMMANDS:
                return [self.reply(n.ERR_NOTREGISTERED, "You have not registered")]
            return [self.reply(n.ERR_UNKNOWNCOMMAND, command, "Unknown command")]
        effects = self.dispatch(command, params)
        if self.nick is None and not self.closed:
            effects += self._try_register()
        return effects

    def register_pass(self, params: list[str]) -> list[Effect]:
        if self.nick is not None:
            return [self.reply(n.ERR_ALREADYREGISTERED, "You may not reregister")]
        self._password = params[0]
        return []

    def register_nick(self, nick: str) -> list[Effect]:
        try:
            nick = validate_nick(nick)
        except ClientError:
            return [self.reply(n.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")]
        if self.registry.get(nick) is not None:
            return [self.reply(n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")]
        self._wanted_nick = nick
        return []

    def register_user(self, params: list[str]) -> list[Effect]:
        if self.nick is not None:
            return [self.reply(n.ERR_ALREADYREGISTERED, "You may not reregister")]
        if not params[0] or not params[3]:
            return [self.reply(n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")]
        user = _USER_CHARS.sub("", params[0])[:USER_CHARS] or "user"
        realname = sanitise(params[3])[: queries.REALNAME_CHARS]
        self._user = ("~" + user, realname)
        return []

    def _try_register(self) -> list[Effect]:
        """Complete registration once NICK, USER and the end of CAP are all in."""
        if self._wanted_nick is None or self._user is None or self.caps.negotiating:
            return []
        password = self.info.password
        if password is not None and not (
            self._password is not None and hmac.compare_digest(self._password.encode(), password.encode())
        ):
            return [
                Pause(self.info.password_delay),
                self.reply(n.ERR_PASSWDMISMATCH, "Password incorrect"),
                *self.error_close(
                    "Closing Link: bad password", WRONG_PASSWORD.replace("_", " "), WRONG_PASSWORD
                ),
            ]
        nick = self._wanted_nick
        user, realname = self._user
        ban = self.registry.server_bans.matching(nick, self.host, user.lstrip("~"))
        if ban is not None:
            why = "You are banned from this server" + (f" ({ban.reason})" if ban.reason else "")
            return [self.reply(n.ERR_YOUREBANNEDCREEP, why), *self.error_close(why, "banned", SERVER_BANNED)]
        try:
            self.registry.add(nick, self.member, None)
        except ClientError:
            self._wanted_nick = None
            return [self.reply(n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")]
        self.nick = nick
        profile = Profile(user, realname, self.host, self.cloak, self.info.clock(), caps=self.caps)
        self.info.profiles.add(nick, profile)
        self.renegotiated()
        return [Registered(nick), *self.welcome()]

    def welcome(self) -> list[Effect]:
        """001-005, LUSERS and the MOTD: what a client gets on registering."""
        info = self.info
        assert self.nick is not None
        burst = [
            self.reply(n.RPL_WELCOME, f"Welcome to the {info.network} IRC Network {self.source}"),
            self.reply(n.RPL_YOURHOST, f"Your host is {info.name}, running version {info.version}"),
            self.reply(n.RPL_CREATED, f"This server was created {info.created}"),
            self.reply(n.RPL_MYINFO, info.name, info.version, USER_MODES, CHANNEL_MODES),
            Send(b"".join(isupport_lines(info.name, self.nick, info.network))),
        ]
        return [*burst, *about.lusers(self, []), *about.motd(self, [])]

    def renegotiated(self) -> None:
        """Capabilities changed after registration: render with the new set from now on."""
        self.renderer = self.member.renderer = self.info.renderers.for_caps(self.caps.enabled)

    # -- dispatch ---------------------------------------------------------------------

    def dispatch(self, command: str, params: list[str]) -> list[Effect]:
        """Run ``command`` with ``params``: 421 if unknown, 461 if too few parameters."""
        entry = handlers.COMMANDS.get(command)
        if entry is None:
            return [self.reply(n.ERR_UNKNOWNCOMMAND, command, "Unknown command")]
        handler, min_params = entry
        if len(params) < min_params:
            if command == "NICK":
                return [self.reply(n.ERR_NONICKNAMEGIVEN, "No nickname given")]
            return [self.reply(n.ERR_NEEDMOREPARAMS, command, "Not enough parameters")]
        try:
            return handler(self, params)
        except ClientError as err:
            return handlers.numeric_for(self, err)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _client_tags(tags: dict[str, str]) -> Tags:
    """The client-only (``+``) tags of a message, in order: a client cannot set server tags."""
    return tuple((k, v) for k, v in tags.items() if k[:1] == "+" and len(k) > 1)


def _tagged(row: bytes, tag: str) -> bytes:
    """``row`` (one line) with ``tag`` added to its tags."""
    return b"@" + tag.encode() + (b";" + row[1:] if row[:1] == b"@" else b" " + row)
