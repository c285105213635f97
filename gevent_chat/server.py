"""The chat server: wiring of config, registry and connections on gevent.

SHELL.  ``ChatServer`` owns the listening ``StreamServer`` (one greenlet per
connection, running ``Connection.run``), the registry and its
``BoundedSemaphore``, and graceful shutdown.  ``main`` is the command line:
``python -m gevent_chat.server``.  It never monkey-patches: every socket here
is a gevent socket already.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from collections.abc import Sequence

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from gevent.server import StreamServer

from . import protocol
from .config import Config, parse_args
from .connection import Connection
from .errors import ConfigError
from .registry import Registry
from .writers import WriterPool

__all__ = ["ChatServer", "main"]

log = logging.getLogger("gevent_chat")


class ChatServer:
    """A running chat service; ``start()`` returns at once, ``stop()`` is graceful."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry: Registry[Connection] = Registry(BoundedSemaphore(1), config.history)
        self.connections: set[Connection] = set()
        self.writers = WriterPool()
        self.stopping = False
        self._all_closed = Event()
        self._listener: StreamServer | None = None

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
        log.info("listening on %s:%d", shown, port)

    def _handle(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        if self.stopping:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, sock, addr)
        self.connections.add(conn)
        conn.run()

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
        log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; returns the exit status."""
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        print(f"gevent-chat-server: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    server = ChatServer(config)
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


if __name__ == "__main__":
    sys.exit(main())
