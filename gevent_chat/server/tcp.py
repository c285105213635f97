"""The TCP line transport, plain or TLS: bytes in, lines to the member.

SHELL.  ``TcpTransport.handle`` is what ``StreamServer`` spawns for each
accepted socket: it applies what must happen before a user exists
(connection limits, TCP keepalive, the TLS handshake), then runs a
``Member`` with ``read_lines``, which frames the byte stream with
``LineBuffer``.  Everything after framing (session, hub, outbox) is shared
with every other transport.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import gevent

from ..core import config as cfg
from ..core import protocol
from ..core.limits import PER_IP
from ..core.protocol import LineBuffer
from . import tls
from .member import Member

if TYPE_CHECKING:
    from .app import ChatServer

__all__ = ["TcpTransport"]

log = logging.getLogger("gevent_chat")

#: One ``recv`` takes at most this much; the line limit is enforced by LineBuffer.
RECV_BYTES = 65536
#: A reader gives way to other greenlets at least once per this many chunks.
MAX_UNYIELDED_CHUNKS = 8
#: Seconds a refused client has to finish a TLS handshake, then to take its notice.
REFUSAL_HANDSHAKE_SECONDS = 5.0


class TcpTransport:
    """Accepts TCP (or TLS) connections for one ``ChatServer``."""

    def __init__(self, app: ChatServer) -> None:
        self.app = app
        self.tls_context = app.tls_context

    def handle(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        """Serve one accepted socket until it closes; called by ``StreamServer``."""
        app = self.app
        if app.stopping:
            return
        _tune(sock)
        ip = addr[0]
        refusal = app.limits.admit(ip)
        try:
            if self.tls_context is not None:
                # A refused client gets a short handshake, only to be told why.
                deadline = app.config.register_timeout if refusal is None else REFUSAL_HANDSHAKE_SECONDS
                try:
                    sock = tls.handshake(self.tls_context, sock, deadline)
                except (OSError, gevent.Timeout) as exc:
                    log.info("TLS handshake with %s failed: %s", addr[0], exc or "timed out")
                    app.metrics.refused.labels("tls_handshake").inc()
                    return
                if app.stopping:  # stop() came while the handshake went on
                    return
            if refusal is not None:
                self._refuse(sock, addr, refusal)
                return
            member = Member(app, sock, addr)
            app.connections.add(member)
            member.run(lambda: read_lines(member, sock))
        finally:
            if refusal is None:
                app.limits.release(ip)
            if self.tls_context is not None:
                sock.close()  # StreamServer closes only the socket it accepted

    def _refuse(self, sock: socket.socket, addr: tuple[str, int], reason: str) -> None:
        """Tell a client over a limit why, best effort, and let the handler close it."""
        self.app.metrics.refused.labels(reason).inc()
        text = "too many connections from your address" if reason == PER_IP else "server full"
        log.info("refused %s: %s", addr[0], text)  # info: a connection flood must not flood the log
        try:
            sock.settimeout(REFUSAL_HANDSHAKE_SECONDS)
            sock.sendall(protocol.notice(text))
        except OSError:
            pass


def read_lines(member: Member, sock: socket.socket) -> None:
    """Frame what ``sock`` receives into lines for ``member``, until EOF or close."""
    recv = sock.recv
    frames = LineBuffer(member.app.config.max_line_bytes)
    unyielded = 0  # chunks handled since this reader last gave way
    while not member.closing:
        data = recv(RECV_BYTES)
        if not data:
            last = frames.close()
            if last is not None:
                member.receive([last])
            return
        member.receive(frames.feed(data))
        # A short chunk means the socket is drained: the next recv parks,
        # and the writers run after every reader ready in this loop turn,
        # each sending what all of them queued in one send.  A full chunk
        # means more is waiting: give way now, so one fast sender cannot
        # hold the hub.  (A TLS recv returns one record, 16 KiB at most, so
        # there the 8-chunk bound is what applies.)
        unyielded += 1
        if len(data) == RECV_BYTES or unyielded >= MAX_UNYIELDED_CHUNKS or member.crowded:
            member.drain()
            unyielded = 0


def _tune(sock: socket.socket) -> None:
    """No Nagle delay; TCP keepalive so that vanished peers are found."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS has only TCP_KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, cfg.KEEPALIVE_IDLE_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, cfg.KEEPALIVE_INTERVAL_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cfg.KEEPALIVE_PROBES)
