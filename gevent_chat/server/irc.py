"""The IRC transport: IRC over TCP (and TLS) into the same chat.

SHELL.  ``IrcService`` holds what every IRC connection of one server
shares (its name, the profiles and renderers, the MOTD) and the
keepalive; ``IrcTransport`` is one IRC port, admitted like the line port
(``tcp.Admission``), each connection a ``Member`` whose session is an
``IrcSession`` read by ``tcp.LineReader``.  The web port's ``/ws`` serves
the same sessions to WebSocket clients that ask for ``text.ircv3.net``.

Keepalive: one greenlet for all IRC connections sends ``PING`` to a
client silent for ``--irc-ping-interval`` seconds and drops one that has
sent nothing by the next ping, with ``ERROR``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gevent

from ..core.errors import ConfigError
from ..core.irc.message import MAX_LINE_BYTES, line
from ..core.irc.profiles import Profiles, cloak
from ..core.irc.render import Renderers
from ..core.irc.session import IrcSession, ServerInfo
from ..core.version import version
from .member import Member
from .tcp import REFUSALS, Admission, LineReader, Listener

if TYPE_CHECKING:
    from .app import ChatServer

__all__ = ["IrcService", "IrcTransport", "error_line"]

log = logging.getLogger("gevent_chat")

#: The network name in 001 and 005.
NETWORK = "gevent-chat"
#: Lines of a MOTD file kept, and characters of each.
MOTD_LINES = 100
MOTD_CHARS = 400


def error_line(text: str) -> bytes:
    """What an IRC client is told as its connection ends: ``ERROR :text``."""
    return line("ERROR", text)


def msgids() -> Callable[[], str]:
    """IRCv3 ``msgid`` values: a random prefix per process (so per worker and node), then a count."""
    prefix = os.urandom(6).hex()
    count = itertools.count(1)
    return lambda: f"{prefix}{next(count):x}"


def read_motd(path: str | None) -> tuple[str, ...] | None:
    """The message of the day in ``path``; raises ``ConfigError`` if it cannot be read."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"--motd-file: {err.strerror or err}") from err
    return tuple(row[:MOTD_CHARS] for row in text.splitlines()[:MOTD_LINES])


class IrcService:
    """The IRC side of one ``ChatServer``: shared state, its ports, the keepalive."""

    def __init__(self, app: ChatServer) -> None:
        config = app.config
        self.app = app
        self.profiles = Profiles()
        name = config.server_name or _host_name()
        self.info = ServerInfo(
            name=name,
            network=NETWORK,
            version=f"gevent-chat-{version()}",
            created=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            motd=read_motd(config.motd_file),
            profiles=self.profiles,
            renderers=Renderers(name, self.profiles.masks),
            clock=time.time,
            password=config.password,
            password_delay=config.password_delay,
            max_unregistered_lines=config.max_unregistered_lines,
            msgid=msgids(),
        )
        self._secret = os.urandom(16).hex()
        #: IRC connections open now -> when they were last pinged (None: not waiting for an answer).
        self.pinged: dict[Member, float | None] = {}
        self.ports: list[IrcTransport] = []
        if config.irc_port is not None:
            self.ports.append(IrcTransport(app, self, config.irc_port, tls=False))
        if config.irc_tls_port is not None:
            self.ports.append(IrcTransport(app, self, config.irc_tls_port, tls=True))
        self._keeper: gevent.Greenlet[[float], None] | None = None
        app.metrics.connected_by_transport.labels("irc").set_function(lambda: len(self.pinged))

    def session(self, member: Member) -> IrcSession[Member]:
        """A new IRC session for ``member``."""
        ip = member.addr[0]
        return IrcSession(member, self.app.registry, self.info, ip, cloak(ip, self._secret))

    def start(self) -> None:
        """Bind every IRC port; raises ``ListenError``.  The keepalive runs even with none (``/ws``)."""
        for port in self.ports:
            port.start()
        self._keeper = gevent.spawn(self._keepalive, self.app.config.irc_ping_interval)

    def close(self) -> None:
        for port in self.ports:
            port.close()
        if self._keeper is not None:
            self._keeper.kill()
            self._keeper = None

    def stop(self) -> None:
        for port in self.ports:
            port.stop()

    def _keepalive(self, interval: float) -> None:
        """Ping quiet IRC clients; drop those that did not answer the last ping; runs until ``close``."""
        period = min(1.0, interval / 4)
        timeouts = self.app.metrics.timeouts.labels("ping")
        ping = line("PING", self.info.name)
        while True:
            gevent.sleep(period)
            now = time.monotonic()
            for member, pinged in list(self.pinged.items()):
                if member.closing:
                    continue
                if pinged is not None and member.heard < pinged:
                    if now - pinged >= interval:
                        timeouts.inc()
                        log.info("%s (%s) did not answer a ping", member.nick, member.peer)
                        member.finish(error_line(f"Ping timeout: {interval:g} seconds"), "ping timeout")
                elif now - member.heard >= interval:
                    self.pinged[member] = now
                    member.deliver(ping)


class IrcTransport(Admission):
    """One IRC port (plain or TLS) of a ``ChatServer``."""

    requires_tls = error_line("This port requires TLS")
    schemes = ("irc", "ircs")

    def __init__(self, app: ChatServer, service: IrcService, port: int, tls: bool) -> None:
        super().__init__(app)
        self.service = service
        self.port = port
        self.tls_context = app.tls_context if tls else None
        self.scheme = self.schemes[tls]
        self._listener: Listener | None = None

    @property
    def started(self) -> bool:
        return self._listener is not None

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "start() first"
        return self._listener.bound

    def start(self) -> None:
        """Bind and accept; raises ``OSError``."""
        listener = Listener((self.app.config.host, self.port), self.handle, spawn=gevent.spawn_raw)
        listener.start()
        self._listener = listener

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop(timeout=0)

    def refusal(self, reason: str) -> bytes:
        return error_line(f"Closing Link: {REFUSALS[reason]}")

    def serve(self, sock: socket.socket, addr: tuple[str, int], deadline: float) -> bool:
        service = self.service
        member = Member(self.app, sock, addr, self.scheme, session=service.session, goodbye=error_line)
        self.app.connections.add(member)
        service.pinged[member] = None
        parked = False
        try:
            parked = member.run(LineReader(member, MAX_LINE_BYTES).read, deadline)
            return parked
        finally:
            if not parked:
                service.pinged.pop(member, None)


def _host_name() -> str:
    """This machine's name, if it is a valid server name, else ``localhost``."""
    from ..core.config import is_server_name

    name = socket.getfqdn() or socket.gethostname()
    return name if is_server_name(name) else "localhost"
