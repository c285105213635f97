"""The connection to Redis: cooperative sockets, up/down state, capped backoff.

SHELL.  redis-py makes its sockets with the stdlib ``socket`` module, which
blocks the whole process unless it is monkey-patched; this server is not
(and its in-process tests must not be).  So the two connection classes
below make ``gevent.socket`` sockets instead: every read and write of
redis-py then parks only the greenlet that issued it.  What else redis-py
does that could block is switched off in ``connect``: its retries (which
``time.sleep``) and the blocking pool (a ``threading.Condition``).  ``rediss://``
is refused: its SSL wrapper would need ``gevent.ssl``.

``Link`` owns the pool and knows whether Redis answers.  The first failure
is logged once; a supervisor greenlet then pings with capped exponential
backoff, and the first answer is logged and wakes everyone waiting on
``up``.  Callers that find Redis down serve from local state and never wait.
"""

from __future__ import annotations

import logging
import socket as stdsocket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
import redis
from gevent import socket
from gevent.event import Event
from redis.backoff import NoBackoff
from redis.connection import Connection, UnixDomainSocketConnection
from redis.retry import Retry

from ...core.errors import ChatError

__all__ = [
    "ANY_ERROR",
    "FAILURES",
    "GeventConnection",
    "GeventUnixConnection",
    "Link",
    "RedisUnavailable",
    "connect",
]

log = logging.getLogger("gevent_chat.redis")

#: What a lost or stalled Redis looks like to redis-py (``BusyLoadingError``,
#: a restarted Redis loading its data, is a ``ConnectionError``).
FAILURES: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
#: Anything redis-py raises, failures included (``redis.RedisError`` is their root, not OSError's).
ANY_ERROR: tuple[type[Exception], ...] = (*FAILURES, redis.RedisError)

#: Backoff between pings while Redis is down: first, doubling, at most.
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0


class RedisUnavailable(ChatError):
    """Redis cannot be used: a wrong URL, or no answer when the server starts."""


class GeventConnection(Connection):
    """A TCP connection on a ``gevent.socket``, with TCP_NODELAY and keepalive."""

    def _connect(self) -> stdsocket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.socket_connect_timeout)
        sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
        sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)
        sock.settimeout(self.socket_timeout)
        return sock


class GeventUnixConnection(UnixDomainSocketConnection):
    """A unix-socket connection on a ``gevent.socket``."""

    def _connect(self) -> stdsocket.socket:
        sock = socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        sock.settimeout(self.socket_connect_timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.socket_timeout)
        return sock


def connect(url: str, timeout: float, name: str | None = None) -> redis.Redis:
    """A client for ``url`` (``redis://`` or ``unix://``) on gevent sockets; raises ``RedisUnavailable``.

    Nothing is sent yet.  ``timeout`` bounds connecting and every reply, so a
    stalled Redis (say, SIGSTOP) costs a waiting greenlet that long at most.
    Every connection, the subscription's too, is named ``name`` (CLIENT SETNAME),
    so ``CLIENT LIST`` tells which server it belongs to.
    """
    scheme = urlsplit(url).scheme
    classes: dict[str, type[Connection] | type[UnixDomainSocketConnection]] = {
        "redis": GeventConnection,
        "unix": GeventUnixConnection,
    }
    if scheme not in classes:
        raise RedisUnavailable(f"unsupported Redis URL {url!r}: use redis://HOST:PORT/DB or unix:///PATH")
    options: dict[str, Any] = {
        "connection_class": classes[scheme],
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),  # we retry, without time.sleep
        "protocol": 2,
        "health_check_interval": 0,
        "client_name": name,
    }
    try:
        pool = redis.ConnectionPool.from_url(url, **options)
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {url!r}: {exc}") from exc
    return redis.Redis(connection_pool=pool)


class Link:
    """A Redis client plus whether it answers; ``start()`` pings once or raises."""

    def __init__(self, url: str, timeout: float = 2.0, name: str | None = None) -> None:
        self.url = url
        self.client = connect(url, timeout, name)
        self.up = Event()  # set while Redis answers
        self.on_up: list[Callable[[], None]] = []  # run (in the supervisor) after each recovery
        self._down = Event()
        self._supervisor: gevent.Greenlet[[], None] | None = None

    def start(self) -> None:
        """Check that Redis answers, then supervise; raises ``RedisUnavailable``."""
        try:
            self.client.ping()
        except ANY_ERROR as exc:
            raise RedisUnavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        self.up.set()
        self._supervisor = gevent.spawn(self._supervise)

    @property
    def is_up(self) -> bool:
        return self.up.is_set()

    def failed(self, exc: BaseException) -> None:
        """Report a failure seen by any user of the link; logged once per outage."""
        if self.up.is_set():
            self.up.clear()
            log.warning("Redis unreachable (%s); serving local users, retrying", exc or type(exc).__name__)
            self._down.set()

    def _supervise(self) -> None:
        while True:
            self._down.wait()
            delay = BACKOFF_FIRST_SECONDS
            while True:
                try:
                    self.client.ping()
                    break
                except FAILURES:
                    gevent.sleep(delay)
                    delay = min(BACKOFF_MAX_SECONDS, delay * 2)
            self._down.clear()
            log.warning("Redis reachable again at %s", self.url)
            self.up.set()
            for hook in list(self.on_up):
                try:
                    hook()
                except FAILURES as exc:  # down again already; the next recovery runs them all
                    self.failed(exc)
                    break

    def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.kill()
        self.up.clear()
        self.client.connection_pool.disconnect()
