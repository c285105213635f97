"""The web port: the browser client's page, and the line protocol over WebSocket.

SHELL.  ``WebTransport.handle`` (``Admission``'s, as on the TCP port) admits
each accepted socket (connection limits, the password-failure budget, the
TLS handshake with ``--certfile``), then ``serve`` reads one request head
within ``HEAD_SECONDS`` and lets ``core.web.WebGate`` answer it.  A page or
an error is sent and the connection closed; ``GET /ws`` becomes a
``Member`` like a TCP one, with two transport hooks: ``frame`` turns the
outbox's lines into one text frame each (after any pong or ping waiting),
and ``last_bytes`` sends the close frame (1001 when the server shuts down,
else 1000, or the peer's own code echoed) and waits a moment for the
peer's answer, so the close is a clean one.  ``read_frames`` is the read
loop: frames in, lines to the member, as ``tcp.LineReader`` does for bytes.

Keepalive: one greenlet for the whole port pings every WebSocket silent
for ``--web-ping-interval`` seconds and cuts one that has sent nothing for
as long again after its ping.  (TCP keepalive, as on the TCP port, finds a
vanished peer too, but only after minutes, and never a stuck proxy.)
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
import time
from typing import TYPE_CHECKING

import gevent

from ..core import protocol
from ..core.irc.message import MAX_LINE_BYTES
from ..core.limits import PASSWORD_FAILURES, PER_IP, SERVER_FULL
from ..core.web import (
    GOING_AWAY,
    NORMAL_CLOSURE,
    SUBPROTOCOL,
    Received,
    Response,
    Site,
    Upgrade,
    WebGate,
    WebSocketLines,
    error_response,
)
from . import static
from .irc import error_line
from .member import Member
from .tcp import MAX_UNYIELDED_CHUNKS, RECV_BYTES, REFUSALS, Admission, Listener
from .tls import shutdown_fd

if TYPE_CHECKING:
    from .app import ChatServer

__all__ = ["HEAD_SECONDS", "WebTransport", "read_frames"]

log = logging.getLogger("gevent_chat")

#: Seconds from accept for a whole request head (and, on a TLS port, the
#: handshake before it); a browser sends its head at once.
HEAD_SECONDS = 10.0
#: Seconds a client has to take a response (the page is a few KB).
SEND_SECONDS = 5.0
#: After a response, what the client still sends is read (at most this long,
#: and this much) before closing, so that the close does not reset the
#: connection under a response it has not read yet.
LINGER_SECONDS = 1.0
LINGER_BYTES = 65536
#: Seconds to wait for the peer's close frame after ours, before closing the socket.
CLOSE_SECONDS = 1.0
#: How often a read side we shut down is looked at for the peer's close frame.
CLOSE_POLL_SECONDS = 0.01
#: The cut reason of a WebSocket that did not answer a ping.
PING_TIMEOUT = "ping timeout"

_REFUSAL_STATUS = {SERVER_FULL: 503, PER_IP: 429, PASSWORD_FAILURES: 429}


class Link:
    """What the keepalive knows of one open WebSocket."""

    __slots__ = ("heard", "lines", "pinged")

    def __init__(self, lines: WebSocketLines) -> None:
        self.lines = lines
        self.heard = time.monotonic()  # when any bytes last arrived (a pong, a partial frame)
        self.pinged: float | None = None  # when the last ping was queued


class WebTransport(Admission):
    """The web port of one ``ChatServer``: the page, its assets and ``/ws``."""

    requires_tls = error_response(400, "this port requires TLS: use https://").data
    schemes = ("ws", "wss")

    def __init__(self, app: ChatServer) -> None:
        super().__init__(app)
        config = app.config
        self.site = Site(
            static.assets(config.max_line_bytes),
            origins=frozenset(config.web_origins),
            max_line_bytes=config.max_line_bytes,
        )
        #: Open WebSockets (their members are in ``app.connections`` too).
        self.links: dict[Member, Link] = {}
        self._listener: Listener | None = None
        self._keeper: gevent.Greenlet[[float], None] | None = None
        app.metrics.connected_by_transport.labels("web").set_function(lambda: len(self.links))

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound."""
        assert self._listener is not None, "start() first"
        return self._listener.bound

    def start(self) -> None:
        """Bind ``--web-host``:``--web-port`` and accept; raises ``OSError``."""
        config = self.app.config
        assert config.web_port is not None
        host = config.host if config.web_host is None else config.web_host
        listener = Listener((host, config.web_port), self.handle, spawn=gevent.spawn_raw)
        listener.start()
        self._listener = listener
        self._keeper = gevent.spawn(self._keepalive, config.web_ping_interval)

    def close(self) -> None:
        """Stop accepting (server shutdown; open WebSockets are closed with the rest)."""
        if self._listener is not None:
            self._listener.close()
        if self._keeper is not None:
            self._keeper.kill()
            self._keeper = None

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop(timeout=0)

    def refusal(self, reason: str) -> bytes:
        return error_response(_REFUSAL_STATUS[reason], REFUSALS[reason]).data

    # -- one connection ----------------------------------------------------------------

    def serve(self, sock: socket.socket, addr: tuple[str, int], deadline: float) -> None:
        app = self.app
        result = self._read_head(sock, deadline)
        if result is None:
            return
        if isinstance(result, Upgrade) and app.stopping:
            result = error_response(503, "the server is shutting down")
        if result.data:
            status = result.status if isinstance(result, Response) else 101
            app.metrics.web_responses.labels(str(status)).inc()
        if isinstance(result, Response):
            _respond(sock, result)
            return
        upgrade = result
        lines = upgrade.lines
        irc = upgrade.subprotocol == SUBPROTOCOL
        goodbye = error_line if irc else protocol.notice
        if irc:  # IRC over WebSocket (IRCv3): one message per text frame
            lines.crlf = True
            lines.limit = MAX_LINE_BYTES
        try:
            sock.settimeout(SEND_SECONDS)
            sock.sendall(upgrade.data)
            if app.stopping:  # stop() came while the 101 went out: it cannot reach us
                sock.sendall(lines.frames(goodbye("server shutting down")) + lines.close(GOING_AWAY))
                return
            sock.settimeout(None)
        except OSError:
            return

        def last_bytes() -> bytes:
            _close_handshake(sock, lines, lines.close(GOING_AWAY if app.stopping else NORMAL_CLOSURE))
            return b""  # sent already

        member = Member(
            app,
            sock,
            addr,
            self.scheme,
            frame=lines.frames,
            last_bytes=last_bytes,
            session=app.irc.session if irc else None,
            goodbye=goodbye,
        )
        link = Link(lines)
        app.connections.add(member)
        self.links[member] = link
        try:
            member.run(lambda: read_frames(member, sock, link, upgrade.received), deadline)
        finally:
            del self.links[member]

    def _read_head(self, sock: socket.socket, deadline: float) -> Response | Upgrade | None:
        """The gate's answer to the request head; a 408 if it is not in by the deadline."""
        gate = WebGate(self.site, tls=self.tls_context is not None)
        now = time.monotonic()
        timer = gevent.Timeout(max(0.001, min(deadline, now + HEAD_SECONDS) - now))
        timer.start()
        try:
            result = None
            while result is None:
                result = gate.receive_data(sock.recv(RECV_BYTES))
            return result
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self.app.metrics.timeouts.labels("request_head").inc()
            return error_response(408, "the request head took too long")
        except OSError:
            return None
        finally:
            timer.close()

    # -- keepalive -----------------------------------------------------------------------

    def _keepalive(self, interval: float) -> None:
        """Ping silent WebSockets, cut those that do not answer; runs until ``close``."""
        period = min(1.0, interval / 4)
        timeouts = self.app.metrics.timeouts.labels("ping")
        while True:
            gevent.sleep(period)
            now = time.monotonic()
            for member, link in list(self.links.items()):
                if member.closing:
                    continue
                if link.pinged is not None and link.heard < link.pinged:
                    if now - link.pinged >= interval:
                        log.info("%s (%s) did not answer a ping", member.nick, member.peer)
                        timeouts.inc()
                        member.cut(PING_TIMEOUT)
                elif now - link.heard >= interval:
                    link.lines.ping()
                    link.pinged = now
                    member.deliver(b"", lines=0)  # the writer sends the ping


def read_frames(member: Member, sock: socket.socket, link: Link, first: Received) -> None:
    """Turn what ``sock`` receives into lines for ``member``, until the WebSocket ends.

    ``first`` is what came with the request head.  Control frames to send
    (pongs) and refusals of binary messages go out through the outbox, so
    the writer stays the only code that writes to the socket.
    """
    lines = link.lines
    recv = sock.recv
    if not _take(member, lines, first):
        return
    unyielded = 0
    while not member.closing:
        data = recv(RECV_BYTES)
        if not data and member.closing:
            # Our own shutdown woke this reader (a cut, a timeout, server
            # shutdown), not the peer's: it may still read our close frame.
            return
        link.heard = time.monotonic()
        if not _take(member, lines, lines.receive_data(data)):
            return
        unyielded += 1  # as in tcp.LineReader: give way after a full chunk, or 8 in a row
        if len(data) == RECV_BYTES or unyielded >= MAX_UNYIELDED_CHUNKS or member.crowded:
            member.drain()
            unyielded = 0


def _take(member: Member, lines: WebSocketLines, got: Received) -> bool:
    """Act on what one read brought; False once the WebSocket is closed."""
    member.receive(got.lines)
    for reply in got.replies:
        member.deliver(reply)
    if lines.wants_write:
        member.deliver(b"", lines=0)  # a pong: the writer frames it
    return not got.closed


def _close_handshake(sock: socket.socket, lines: WebSocketLines, frame: bytes) -> None:
    """Send our close frame (best effort, never blocking), then wait for the peer's.

    Closing the socket as soon as ours is out would reset the connection
    under the peer's answer, and a browser then reports an unclean close.
    A cut (server shutdown, a timeout) has shut our read side down, so
    ``recv`` returns b"" at once; Linux still queues what the peer sends,
    so then the peer's answer is looked for until the deadline.
    """
    try:
        sock.settimeout(0.0)
        if frame:
            sock.send(frame)
        deadline = time.monotonic() + CLOSE_SECONDS
        shut = False
        while not lines.is_closed:  # closed once both close frames have passed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if shut and not _queued_bytes(sock):
                gevent.sleep(min(remaining, CLOSE_POLL_SECONDS))
                continue
            sock.settimeout(remaining)
            data = sock.recv(RECV_BYTES)
            if data:
                lines.receive_data(data)
            elif shut:
                return  # queued bytes, yet nothing to read: nothing will come
            else:
                shut = True
    except OSError:
        pass


def _queued_bytes(sock: socket.socket) -> int:
    """Bytes the kernel holds for ``sock`` to read (0 if it cannot tell)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def _respond(sock: socket.socket, response: Response) -> None:
    """Send a whole response, then close gently: read what the client still sends."""
    if not response.data:
        return
    try:
        sock.settimeout(SEND_SECONDS)
        sock.sendall(response.data)
        shutdown_fd(sock, socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        left = LINGER_BYTES
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            data = sock.recv(min(left, RECV_BYTES))
            if not data:
                break
            left -= len(data)
    except OSError:
        pass
