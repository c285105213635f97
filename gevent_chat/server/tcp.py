"""The TCP line transport, plain or TLS: bytes in, lines to the member.

SHELL.  ``Admission.handle`` is what ``StreamServer`` spawns for each
accepted socket, on every port: it applies what must happen before a user
exists (connection limits, the password-failure budget, TCP keepalive, the
TLS handshake), then hands the socket to its transport's ``serve``.
``TcpTransport.serve`` runs a ``Member`` with a ``LineReader``, which frames
the byte stream with ``LineBuffer``; the web port (``web.py``) is the other
transport.  Everything after framing (session, hub, outbox) is shared.

The greenlet ``StreamServer`` spawns starts each connection, but on plain
TCP it ends as soon as the connection goes idle: the reader parks on its
socket's read watcher, and a pooled greenlet continues it when bytes come
(see ``LineReader``).  Whichever greenlet sees the end (EOF, close, cut,
timeout, error) runs what the handler's ``finally`` blocks would: the
member's teardown, the release of the connection limits, the close.  TLS
readers keep their greenlet.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent.server import StreamServer
from gevent.socket import socket as GeventSocket

from ..core import config as cfg
from ..core import protocol
from ..core.limits import PASSWORD_FAILURES, PER_IP, SERVER_FULL
from ..core.protocol import LineBuffer
from . import tls
from .member import Member

if TYPE_CHECKING:
    from .app import ChatServer

__all__ = ["Admission", "Listener", "TcpTransport"]

log = logging.getLogger("gevent_chat")

#: One ``recv`` takes at most this much; the line limit is enforced by LineBuffer.
RECV_BYTES = 65536
#: A reader gives way to other greenlets at least once per this many chunks.
MAX_UNYIELDED_CHUNKS = 8
#: Seconds a refused client has to finish a TLS handshake, then to take its notice.
REFUSAL_HANDSHAKE_SECONDS = 2.0
#: Refused TLS clients given a handshake at once, to be told why; any more are
#: closed at once, so a flood of refusals costs almost nothing.
MAX_REFUSAL_HANDSHAKES = 8
#: The first byte of a TLS handshake record.
_TLS_HANDSHAKE = 0x16
_REQUIRES_TLS = protocol.notice("this port requires TLS")
REFUSALS = {
    SERVER_FULL: "server full",
    PER_IP: "too many connections from your address",
    PASSWORD_FAILURES: "too many wrong passwords from your address, try later",
}
#: Out of descriptors, the listener stops accepting this long, and warns once.
ACCEPT_PAUSE_SECONDS = 1.0


class Admission:
    """Admits connections to one port of a ``ChatServer``; ``serve`` does the rest.

    Subclasses say what the port speaks: ``serve``, and how a refused or a
    plaintext client is told (``refusal``, ``requires_tls``).
    """

    #: What a plaintext client on a TLS port is sent.
    requires_tls = _REQUIRES_TLS
    #: What the log calls this port's connections, without and with TLS.
    schemes = ("tcp", "tls")

    def __init__(self, app: ChatServer) -> None:
        self.app = app
        self.tls_context = app.tls_context
        self.scheme = self.schemes[self.tls_context is not None]
        self.refusal_handshakes = 0  # in progress now

    def serve(self, sock: socket.socket, addr: tuple[str, int], deadline: float) -> bool | None:
        """Serve an admitted (and, on a TLS port, secured) socket until it ends.

        ``deadline`` (monotonic) ends the registration window, opened at accept.
        True means the connection lives on, parked (see ``LineReader``):
        whoever resumes it releases and closes it when it ends.
        """
        raise NotImplementedError

    def refusal(self, reason: str) -> bytes:
        """What a client refused for ``reason`` (a ``core.limits`` name) is sent."""
        return protocol.notice(REFUSALS[reason])

    def handle(self, sock: socket.socket, addr: tuple[str, int]) -> bool:
        """Serve one accepted socket until it closes or parks (True); called by ``StreamServer``."""
        app = self.app
        if app.stopping:
            return False
        _tune(sock)
        ip = addr[0]
        refusal = app.limits.admit(ip)
        if refusal is None and app.password_failures.exhausted(ip, time.monotonic()):
            app.limits.release(ip)
            refusal = PASSWORD_FAILURES
        # One registration window from accept: the TLS handshake spends it too.
        deadline = time.monotonic() + app.config.register_timeout
        parked = False
        try:
            if self.tls_context is not None:
                if refusal is not None and self.refusal_handshakes >= MAX_REFUSAL_HANDSHAKES:
                    app.metrics.refused.labels(refusal).inc()
                    return False  # closed at once: telling costs more than a refusal may
                secure = self._secure(sock, addr, refusal)
                if secure is None:
                    return False
                sock = secure
                if app.stopping:  # stop() came while the handshake went on
                    return False
            if refusal is not None:
                self._refuse(sock, addr, refusal)
                return False
            parked = bool(self.serve(sock, addr, deadline))
            return parked
        finally:
            if not parked:  # else LineReader.resume does this when the connection ends
                if refusal is None:
                    app.limits.release(ip)
                if self.tls_context is not None:
                    sock.close()  # StreamServer closes only the socket it accepted

    def _secure(
        self, sock: socket.socket, addr: tuple[str, int], refusal: str | None
    ) -> socket.socket | None:
        """The TLS socket after a handshake within the window, or None.

        Only a first byte that cannot open a TLS handshake is answered (in
        plaintext); silence, a stalled handshake and a failed one are closed.
        """
        assert self.tls_context is not None
        app = self.app
        if refusal is None:
            window = app.config.register_timeout
        else:  # a refused client gets a short handshake, only to be told why
            window = REFUSAL_HANDSHAKE_SECONDS
            self.refusal_handshakes += 1
        started = time.monotonic()
        try:
            first = _first_byte(sock, window)
            if first is None:  # silent all the window, or gone
                log.info("no TLS handshake from %s", addr[0])
                app.metrics.refused.labels("tls_handshake").inc()
                return None
            if first != _TLS_HANDSHAKE:
                self._tell_plaintext(sock, addr)
                return None
            remaining = max(0.001, window - (time.monotonic() - started))
            return tls.handshake(self.tls_context, sock, remaining)
        except (OSError, gevent.Timeout) as exc:
            log.info("TLS handshake with %s failed: %s", addr[0], exc or "timed out")
            app.metrics.refused.labels("tls_handshake").inc()
            return None
        finally:
            if refusal is not None:
                self.refusal_handshakes -= 1

    def _tell_plaintext(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        """Tell a client that spoke plaintext on the TLS port so, best effort."""
        log.info("plaintext client %s on the TLS port", addr[0])
        self.app.metrics.refused.labels("tls_handshake").inc()
        try:
            sock.settimeout(0.0)
            sock.recv(RECV_BYTES)  # what it typed: unread, the close would be a reset
        except OSError:
            pass
        try:
            sock.settimeout(REFUSAL_HANDSHAKE_SECONDS)
            sock.sendall(self.requires_tls)
        except OSError:
            pass

    def _refuse(self, sock: socket.socket, addr: tuple[str, int], reason: str) -> None:
        """Tell a client over a limit why, best effort, and let the handler close it."""
        self.app.metrics.refused.labels(reason).inc()
        log.info("refused %s: %s", addr[0], REFUSALS[reason])  # info: a flood must not flood the log
        try:
            sock.settimeout(REFUSAL_HANDSHAKE_SECONDS)
            sock.sendall(self.refusal(reason))
        except OSError:
            pass


class TcpTransport(Admission):
    """The line protocol over TCP (or TLS) for one ``ChatServer``."""

    def serve(self, sock: socket.socket, addr: tuple[str, int], deadline: float) -> bool:
        member = Member(self.app, sock, addr, self.scheme)
        self.app.connections.add(member)
        return member.run(LineReader(member).read, deadline)


def _first_byte(sock: socket.socket, timeout: float) -> int | None:
    """The peer's first byte (left unread), or None after ``timeout`` of silence or at EOF.

    A TLS client speaks first, but its ClientHello may come late (a slow
    link, a loaded client): silence is waited out for the whole window, not
    taken for a plaintext client waiting for a prompt.
    """
    sock.settimeout(timeout)
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return None
    finally:
        sock.settimeout(None)
    return first[0] if first else None


class Listener(StreamServer):
    """A ``StreamServer`` that rides out running out of file descriptors.

    gevent's own accept loop prints a traceback for every failed accept; out
    of descriptors, that is several a second.  This one logs one warning per
    pause instead and stops accepting for ``ACCEPT_PAUSE_SECONDS``: waiting
    clients stay in the backlog, and the rest of the server carries on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._paused: Any = None

    def do_read(self) -> Any:
        try:
            return super().do_read()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            if self._paused is None:
                log.warning(
                    "out of file descriptors (%s): not accepting for %g s", exc.strerror, ACCEPT_PAUSE_SECONDS
                )
                self.stop_accepting()
                self._paused = self.loop.timer(ACCEPT_PAUSE_SECONDS)
                self._paused.start(self._resume)
            return None

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually bound (the port is real even with port 0)."""
        address = self.address
        assert isinstance(address, tuple)
        return str(address[0]), int(address[1])

    def _resume(self) -> None:
        self._paused = None
        if self.started:
            self.start_accepting()

    def do_handle(self, *args: Any) -> None:
        """Start the handler greenlet on ``_serve`` itself.

        gevent's own ``do_handle`` runs the handler as ``handle(*args)`` from
        a wrapper, a call CPython cannot inline: a waiting TLS reader then
        keeps one more C frame in its saved stack (about 0.4 KB a connection).
        """
        try:
            self._spawn(self._serve, *args)  # type: ignore[attr-defined]
        except BaseException:
            self.do_close(*args)
            raise

    def _serve(self, sock: socket.socket, address: Any) -> None:
        parked = False
        try:
            parked = self._handle(sock, address)  # type: ignore[attr-defined]
        finally:
            if not parked:  # a parked connection is closed by whoever ends it
                self.do_close(sock, address)


class LineReader:
    """Frames what a member's socket receives into lines, until EOF or close.

    On plain TCP, a reader with nothing to read parks instead of waiting:
    ``read`` starts the socket's read watcher with ``_readable`` and
    returns True, so the greenlet that ran it ends or goes back to the
    pool, and an idle connection holds no greenlet (a parked one costs
    about 7 KB, most of an idle connection).  Readability (data, EOF, or
    the ``shutdown`` of a cut or a finish) continues the loop on a pooled
    greenlet; one greenlet at a time runs it, in order.  TLS keeps waiting
    inside ``recv``: the TLS object may hold decrypted bytes that the
    watcher cannot see.
    """

    __slots__ = ("frames", "member", "source")

    def __init__(self, member: Member, limit: int | None = None) -> None:
        """``limit``: the longest line (default ``--max-line-bytes``)."""
        self.member = member
        sock = member.sock
        # Plain TCP: the non-blocking OS socket, which says when it would block.
        self.source = sock._sock if type(sock) is GeventSocket else sock  # type: ignore[attr-defined]
        # A partial line outlives a park.
        self.frames = LineBuffer(member.app.config.max_line_bytes if limit is None else limit)

    def read(self) -> bool:
        """Read and act until the connection ends (False) or the reader parks (True)."""
        member, frames = self.member, self.frames
        recv = self.source.recv
        # Plain TCP parks on the socket's read watcher; TLS waits in recv.
        watcher = member.sock._read_event if type(member.sock) is GeventSocket else None  # type: ignore[attr-defined]
        unyielded = 0  # chunks handled since this reader last gave way
        while not member.closing:
            try:
                data = recv(RECV_BYTES)
            except BlockingIOError:
                if watcher is None:
                    raise  # never so: gevent's TLS recv waits instead
                watcher.start(_readable, self)
                return True
            if not data:
                last = frames.close()
                if last is not None:
                    member.receive([last])
                return False
            member.receive(frames.feed(data))
            # A full chunk means more is waiting: give way now, so one fast
            # sender cannot hold the hub.  (A TLS recv returns one record,
            # 16 KiB at most, so there the 8-chunk bound is what applies.)
            # A short chunk means the socket is drained: park at once rather
            # than ask again for the EAGAIN (the watcher is level-triggered,
            # so bytes that came meanwhile wake it in this loop turn).  The
            # writers run after every reader ready in this turn, each sending
            # what all of them queued in one send.
            unyielded += 1
            if len(data) == RECV_BYTES or unyielded >= MAX_UNYIELDED_CHUNKS or member.crowded:
                member.drain()
                unyielded = 0
            elif watcher is not None and not member.closing:
                watcher.start(_readable, self)
                return True
        return False

    def resume(self) -> None:
        """Continue the read loop after a park, on a pooled greenlet, to its end or next park."""
        member = self.member
        parked = False
        try:
            parked = member.proceed(self.read)
        finally:
            if not parked:
                # What ``Admission.handle`` and ``Listener._serve`` do after
                # their handler ends: they returned when this reader first parked.
                member.app.limits.release(member.addr[0])
                member.sock.close()


def _readable(reader: LineReader) -> None:
    """In the hub: a parked reader's socket is readable; continue its loop.

    A plain function, not a bound method: if the socket were closed while
    parked, gevent would try to throw into the callback's ``__self__``.
    """
    member = reader.member
    member.sock._read_event.stop()  # type: ignore[attr-defined]
    member.app.writers.run_now(reader.resume)


def _tune(sock: socket.socket) -> None:
    """No Nagle delay; TCP keepalive so that vanished peers are found."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS has only TCP_KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, cfg.KEEPALIVE_IDLE_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, cfg.KEEPALIVE_INTERVAL_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cfg.KEEPALIVE_PROBES)
