"""The chat server: wiring of config, registry and connections on gevent.

SHELL.  ``ChatServer`` owns the listening ``StreamServer`` (one greenlet per
connection, running ``Connection.run``), the registry and its
``BoundedSemaphore``, graceful shutdown, and the protections that act before a
``Connection`` exists (connection limits, TCP keepalive, the TLS handshake) or
across all of them (the idle sweep, the metrics endpoint).  ``main`` is the command line:
``python -m gevent_chat.server``.  It never monkey-patches: every socket here
is a gevent socket already.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from gevent.server import StreamServer

from ..core import config as cfg
from ..core import protocol
from ..core.config import Config, parse_args
from ..core.errors import ConfigError
from ..core.limits import PER_IP, ConnectionLimits
from ..core.registry import Registry
from . import tls
from .connection import Connection
from .metrics import Metrics
from .writers import WriterPool

__all__ = ["ChatServer", "main"]

log = logging.getLogger("gevent_chat")


class ChatServer:
    """A running chat service; ``start()`` returns at once, ``stop()`` is graceful."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry: Registry[Connection] = Registry(BoundedSemaphore(1), config.history)
        self.connections: set[Connection] = set()
        self.writers = WriterPool(config.outbox_size)
        self.stopping = False
        self._all_closed = Event()
        self._listener: StreamServer | None = None
        # -- protections --
        self.limits = ConnectionLimits(config.max_clients, config.max_per_ip)
        self.metrics = Metrics(lambda: len(self.connections), lambda: len(self.registry))
        self.metrics_address: tuple[str, int] | None = None
        self.tls_context = tls.server_context(config.certfile, config.keyfile) if config.certfile else None
        self._sweeper: gevent.Greenlet[[float], None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the port is real even with ``port=0``)."""
        assert self._listener is not None, "start() first"
        address = self._listener.address
        assert isinstance(address, tuple)
        return str(address[0]), int(address[1])

    def start(self) -> None:
        """Bind and start accepting in the background; raises ``OSError``."""
        # Raw greenlets for the readers: a parked ``Greenlet`` object costs
        # about 1 KB more per connection, and nothing here needs its links.
        # The stubs know only Greenlet-returning spawns; any callable works.
        listener = StreamServer(  # type: ignore[call-overload]
            (self.config.host, self.config.port),
            self._handle,
            spawn=gevent.spawn_raw,
        )
        listener.start()
        self._listener = listener
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        log.info("listening on %s:%d%s", shown, port, " (TLS)" if self.tls_context else "")
        config = self.config
        if config.metrics_port is not None:
            mhost, mport = self.metrics_address = self.metrics.serve(config.metrics_host, config.metrics_port)
            log.info("metrics on http://%s:%d/metrics", f"[{mhost}]" if ":" in mhost else mhost, mport)
        if config.idle_timeout:
            self._sweeper = gevent.spawn(self._sweep_idle, config.idle_timeout)

    def _handle(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        if self.stopping:
            return
        _tune(sock)
        ip = addr[0]
        refusal = self.limits.admit(ip)
        try:
            if self.tls_context is not None:
                # A refused client gets a short handshake, only to be told why.
                deadline = self.config.register_timeout if refusal is None else REFUSAL_HANDSHAKE_SECONDS
                try:
                    sock = tls.handshake(self.tls_context, sock, deadline)
                except (OSError, gevent.Timeout) as exc:
                    log.info("TLS handshake with %s failed: %s", addr[0], exc or "timed out")
                    self.metrics.refused.labels("tls_handshake").inc()
                    return
                if self.stopping:  # stop() came while the handshake went on
                    return
            if refusal is not None:
                self._refuse(sock, addr, refusal)
                return
            conn = Connection(self, sock, addr)
            self.connections.add(conn)
            conn.run()
        finally:
            if refusal is None:
                self.limits.release(ip)
            if self.tls_context is not None:
                sock.close()  # StreamServer closes only the socket it accepted

    def _refuse(self, sock: socket.socket, addr: tuple[str, int], reason: str) -> None:
        """Tell a client over a limit why, best effort, and let the handler close it."""
        self.metrics.refused.labels(reason).inc()
        text = "too many connections from your address" if reason == PER_IP else "server full"
        log.info("refused %s: %s", addr[0], text)  # info: a connection flood must not flood the log
        try:
            sock.settimeout(REFUSAL_HANDSHAKE_SECONDS)
            sock.sendall(protocol.notice(text))
        except OSError:
            pass

    def _sweep_idle(self, limit: float) -> None:
        """Disconnect registered users silent for ``limit`` seconds; runs until stop."""
        period = min(1.0, limit / 4)
        notice = protocol.notice(f"disconnected: idle for {limit:g} seconds")
        idle = self.metrics.timeouts.labels("idle")
        while True:
            gevent.sleep(period)
            oldest = time.monotonic() - limit
            for conn in list(self.connections):
                if conn.nick is not None and conn.heard <= oldest and not conn.closing:
                    idle.inc()
                    conn.finish(notice, "idle")

    def forget(self, conn: Connection) -> None:
        """Called by a connection as its last act."""
        self.connections.discard(conn)
        if self.stopping and not self.connections:
            self._all_closed.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, tell everyone, flush for at most ``timeout`` seconds, close."""
        if timeout is None:
            timeout = self.config.shutdown_timeout
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        if self._sweeper is not None:
            self._sweeper.kill()
        conns = list(self.connections)
        log.info("shutting down: %d connection(s)", len(conns))
        farewell = protocol.notice("server shutting down")
        for conn in conns:
            conn.deliver(farewell)
            conn.closing = True  # nothing more goes in; the writer drains
        deadline = time.monotonic() + timeout
        for conn in conns:
            conn.wait_flushed(max(0.0, deadline - time.monotonic()))
        for conn in conns:
            conn.cut("server shutting down", force=True)
        if self.connections and not self._all_closed.wait(max(1.0, timeout)):
            log.warning("%d connection(s) did not close in time", len(self.connections))
        if self._listener is not None:
            self._listener.stop(timeout=0)
        self.metrics.close()
        log.info("stopped")


#: Seconds a refused client has to finish a TLS handshake, then to take its notice.
REFUSAL_HANDSHAKE_SECONDS = 5.0


def _tune(sock: socket.socket) -> None:
    """No Nagle delay; TCP keepalive so that vanished peers are found."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS has only TCP_KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, cfg.KEEPALIVE_IDLE_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, cfg.KEEPALIVE_INTERVAL_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cfg.KEEPALIVE_PROBES)


def _with_password_file(config: Config) -> Config:
    """Read ``--password-file`` (shell work kept out of the pure config)."""
    if config.password_file is None:
        return config
    try:
        text = Path(config.password_file).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--password-file: {err.strerror or err}") from err
    return dataclasses.replace(config, password=cfg.password_from_file(text))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; returns the exit status."""
    try:
        config = _with_password_file(parse_args(sys.argv[1:] if argv is None else argv, os.environ))
    except ConfigError as err:
        print(f"{cfg.PROG}: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        server = ChatServer(config)
    except OSError as err:  # unreadable certificate or key
        log.error("cannot load TLS certificate: %s", err.strerror or err)
        return 1
    try:
        server.start()
    except OSError as err:
        log.error("cannot listen on %s:%d: %s", config.host, config.port, err.strerror or err)
        return 1
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    log.info("signal received")
    server.stop()
    return 0
