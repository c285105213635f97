"""The connection to Redis: cooperative sockets, up/down state, capped backoff.

SHELL.  redis-py makes its sockets with the stdlib ``socket`` module, which
blocks the whole process unless it is monkey-patched; this server is not
(and its in-process tests must not be).  So the connection classes below
make ``gevent.socket`` sockets instead: every read and write of redis-py
then parks only the greenlet that issued it.  For ``rediss://`` the same
socket is wrapped by a ``gevent.ssl`` context, built from
``gevent.ssl.SSLContext`` directly (``create_default_context()``, which
redis-py's own ``SSLConnection`` uses, returns the stdlib's blocking one),
from the settings ``SSLConnection`` stored from the URL: ``ssl_ca_certs``,
``ssl_cert_reqs``, ``ssl_check_hostname``, ``ssl_certfile``/``ssl_keyfile``
and the rest.  Its OCSP options are refused: those checks open blocking
sockets of their own.
What else redis-py does that could block is switched off in ``connect``:
its retries (which ``time.sleep``) and the blocking pool (a
``threading.Condition``).

``Link`` owns the pool and knows whether Redis answers.  The first failure
is logged once; a supervisor greenlet then pings with capped exponential
backoff, and the first answer is logged and wakes everyone waiting on
``up``.  Callers that find Redis down serve from local state and never wait.
"""

from __future__ import annotations

import logging
import socket as stdsocket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import gevent
import redis
from gevent import socket, ssl
from gevent.event import Event
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.retry import Retry

from ...core.errors import ChatError
from .topology import Router

__all__ = [
    "ANY_ERROR",
    "FAILURES",
    "GeventConnection",
    "GeventSSLConnection",
    "GeventUnixConnection",
    "Link",
    "RedisUnavailable",
    "Script",
    "connect",
    "fresh_connection",
    "redact",
]

log = logging.getLogger("gevent_chat.redis")

#: What a lost or stalled Redis looks like to redis-py (``BusyLoadingError``,
#: a restarted Redis loading its data, is a ``ConnectionError``), and what a
#: Redis Cluster in flux answers: a slot moved (``MOVED``, ``ASK``: an
#: ``AskError``), no quorum or a slot without master (``CLUSTERDOWN``),
#: ``TRYAGAIN``, and ``READONLY`` from a master that became a replica.
T = TypeVar("T")

FAILURES: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
)
#: Anything redis-py raises, failures included (``redis.RedisError`` is their root, not OSError's).
ANY_ERROR: tuple[type[Exception], ...] = (*FAILURES, redis.RedisError)

#: Backoff between pings while Redis is down: first, doubling, at most.
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0


class RedisUnavailable(ChatError):
    """Redis cannot be used: a wrong URL, or no answer when the server starts."""


#: OpenSSL's verify codes for a certificate valid, but not for the name connected to.
_NAME_MISMATCH = frozenset({62, 63, 64})  # X509_V_ERR_HOSTNAME_, EMAIL_, IP_ADDRESS_MISMATCH


def _tcp(conn: Connection) -> stdsocket.socket:
    """A ``gevent.socket`` connected to ``conn``'s host and port, with TCP_NODELAY and keepalive."""
    sock = socket.create_connection((conn.host, conn.port), timeout=conn.socket_connect_timeout)
    sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)
    sock.settimeout(conn.socket_timeout)
    return sock


class GeventConnection(Connection):
    """A TCP connection on a ``gevent.socket``, with TCP_NODELAY and keepalive."""

    def _connect(self) -> stdsocket.socket:
        return _tcp(self)


class GeventSSLConnection(SSLConnection):
    """A ``rediss://`` connection: a ``gevent.socket`` wrapped by a ``gevent.ssl`` context.

    The server's certificate and host name are verified unless the URL says
    otherwise (``ssl_cert_reqs=none``, ``ssl_check_hostname=false``).  With
    ``ssl_ca_certs`` (or ``ssl_ca_path``, ``ssl_ca_data``) only those CAs are
    trusted, else the system's.  The context is built once, when the
    connection object is (``connect`` makes one at once, so unreadable files
    are a URL error at start); the handshake runs under ``socket_timeout``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # SSLConnection stores the ssl_* options
        if _asked(self.ssl_validate_ocsp) or _asked(self.ssl_validate_ocsp_stapled):
            raise redis.RedisError("OCSP validation is not supported (it would block the server)")
        try:
            self.context = self._make_context()
        except (OSError, ValueError) as exc:
            raise redis.RedisError(f"unusable TLS settings: {exc}") from exc

    def _make_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = bool(self.check_hostname)  # before verify_mode: CERT_NONE needs it off
        ctx.verify_mode = self.cert_reqs
        for flag in self.ssl_include_verify_flags or ():
            ctx.verify_flags |= flag
        for flag in self.ssl_exclude_verify_flags or ():
            ctx.verify_flags &= ~flag
        if self.certfile or self.keyfile:
            ctx.load_cert_chain(self.certfile, self.keyfile, self.certificate_password)
        if self.ca_certs is not None or self.ca_path is not None or self.ca_data is not None:
            ctx.load_verify_locations(cafile=self.ca_certs, capath=self.ca_path, cadata=self.ca_data)
        elif self.cert_reqs != ssl.CERT_NONE:
            ctx.load_default_certs()
        if self.ssl_min_version is not None:
            ctx.minimum_version = self.ssl_min_version
        if self.ssl_ciphers:
            ctx.set_ciphers(self.ssl_ciphers)
        return ctx

    def _connect(self) -> stdsocket.socket:
        sock = _tcp(self)
        try:
            return self._wrap_socket_with_ssl(sock)
        except BaseException:
            sock.close()
            raise

    def _wrap_socket_with_ssl(self, sock: stdsocket.socket) -> ssl.SSLSocket:
        """The handshake, cooperatively; a failed one is one clear ``ConnectionError``."""
        where = f"{self.host}:{self.port}"
        try:
            return self.context.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            why = str(exc.verify_message).rstrip(".")
            if exc.verify_code in _NAME_MISMATCH:
                hint = "connect by a name it holds, or add ssl_check_hostname=false"
            else:
                hint = "name its CA with ?ssl_ca_certs=FILE"
            raise redis.ConnectionError(f"TLS certificate of {where} not accepted: {why} ({hint})") from exc
        except ssl.SSLError as exc:
            why = exc.reason or exc.strerror or str(exc)
            raise redis.ConnectionError(f"TLS handshake with {where} failed: {why}") from exc
        except TimeoutError as exc:  # a plain Redis reads the hello as a command, and waits
            raise redis.TimeoutError(f"no TLS handshake from {where} in time (a redis:// port?)") from exc


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


def _asked(option: object) -> bool:
    """An option switched on, from code (True) or from a URL (a string such as "true")."""
    if isinstance(option, str):
        return option.strip().lower() not in ("", "0", "false", "f", "n", "no", "off")
    return bool(option)


def redact(url: str) -> str:
    """``url`` as logs and errors show it: any password (``user:PASS@``,
    ``?password=``, ``?ssl_password=``) replaced by ``***``, since managed
    Redis URLs carry one."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if "password" in k.lower() else v) for k, v in pairs], safe="/*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(unreadable URL)"


def connect(url: str, timeout: float, name: str | None = None) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) on gevent sockets.

    Raises ``RedisUnavailable`` for a URL it cannot use.  Nothing is sent yet.
    ``timeout`` bounds connecting, the TLS handshake and every reply, so a
    stalled Redis (say, SIGSTOP) costs a waiting greenlet that long at most.
    Every connection, the subscription's too, is named ``name`` (CLIENT SETNAME),
    so ``CLIENT LIST`` tells which server it belongs to.
    """
    scheme = urlsplit(url).scheme
    classes: dict[str, type[Connection] | type[UnixDomainSocketConnection]] = {
        "redis": GeventConnection,
        "rediss": GeventSSLConnection,
        "unix": GeventUnixConnection,
    }
    if scheme not in classes:
        raise RedisUnavailable(
            f"unsupported Redis URL {redact(url)!r}: use redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH"
        )
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
        # Connections are made on first use; make one now (nothing is sent) so that
        # an unknown or bad query option is a URL error, not a failure at the first command.
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, redis.RedisError) as exc:
        raise RedisUnavailable(f"invalid Redis URL {redact(url)!r}: {exc}") from exc
    return redis.Redis(connection_pool=pool)


def fresh_connection(client: redis.Redis) -> Any:
    """A new connection like those of ``client``'s pool, outside it.

    Not ``make_connection()``: the pool counts what it made against its
    ``max_connections`` and only a release gives it back, so reconnecting
    raw connections would use it up.
    """
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


class Link:
    """A Redis client plus whether it answers; ``start()`` pings once or raises.

    ``start`` also finds out whether the URL names a Redis Cluster node; then
    ``client`` becomes a ``topology.Router`` (typed as redis-py's client: it
    answers the same calls) and ``sharded`` says whether rooms publish with
    SPUBLISH (Redis >= 7).  Nothing else is configured for a Cluster.
    """

    def __init__(self, url: str, timeout: float = 2.0, name: str | None = None) -> None:
        #: What logs and errors show of ``url``: no password.
        self.shown_url = redact(url)
        self.timeout = timeout  # bounds every reply, on every connection of the link
        self.client: Any = connect(url, timeout, name)
        self.router: Router | None = None  # set when the URL names a Redis Cluster node
        self.sharded = False  # rooms' channels are shard channels (SPUBLISH, SSUBSCRIBE)
        self.up = Event()  # set while Redis answers
        self.on_up: list[Callable[[], None]] = []  # run (in the supervisor) after each recovery
        self._down = Event()
        self._supervisor: gevent.Greenlet[[], None] | None = None

    def start(self) -> None:
        """Check that Redis answers, then supervise; raises ``RedisUnavailable``."""
        try:
            self.client.ping()
            self._detect_cluster()
        except ANY_ERROR as exc:
            raise RedisUnavailable(f"cannot reach Redis at {self.shown_url}: {exc}") from exc
        self.up.set()
        self._supervisor = gevent.spawn(self._supervise)

    def _detect_cluster(self) -> None:
        info = cast("dict[str, Any]", self.client.info("server") | self.client.info("cluster"))
        if not int(info.get("cluster_enabled", 0)):
            return
        seed: redis.Redis = self.client
        pool = seed.connection_pool

        def make(address: tuple[str, int]) -> redis.Redis:
            kwargs = {**pool.connection_kwargs, "host": address[0], "port": address[1]}
            return redis.Redis(
                connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
            )

        router = Router(seed, make)
        router.ping()
        self.router = self.client = router
        self.sharded = int(str(info.get("redis_version", "0")).split(".")[0]) >= 7
        log.info("Redis Cluster of %d master(s) at %s", len(router.masters()), self.shown_url)

    def script(self, text: str) -> Script:
        """A Lua script to call as redis-py's ``Script`` is, on whichever client ``start`` chose."""
        return Script(self, text)

    def new_connection(self, where: tuple[str, int] | None = None) -> Any:
        """A new, unconnected redis-py connection for raw use: to the Redis, or to the
        Cluster master at ``where`` (None: any master)."""
        if self.router is not None:
            return self.router.connection(where)
        return fresh_connection(self.client)

    @property
    def is_up(self) -> bool:
        return self.up.is_set()

    def attempt(self, call: Callable[..., T], *args: Any) -> T | None:
        """``call(*args)`` if Redis is up; None if it is down or the call failed (then reported)."""
        if not self.up.is_set():
            return None
        try:
            return call(*args)
        except FAILURES as exc:
            self.failed(exc)
            return None

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
            log.warning("Redis reachable again at %s", self.shown_url)
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
        if self.router is not None:
            self.router.close()
        else:
            self.client.connection_pool.disconnect()


class Script:
    """redis-py's ``Script``, registered with the link's client when first called.

    The components register their scripts before ``start`` knows whether
    the URL names a Redis Cluster node.
    """

    def __init__(self, link: Link, text: str) -> None:
        self.link = link
        self.text = text
        self._client: Any = None
        self._script: Any = None

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if self._client is not self.link.client:
            self._client = self.link.client
            self._script = self._client.register_script(self.text)
        return self._script(keys=keys, args=args, client=client)
