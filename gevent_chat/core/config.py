"""Every limit of the server in one validated, immutable value.

PURE: parses ``argv`` and an environment mapping, never ``sys.argv`` or
``os.environ`` directly, so tests build configs with plain calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence

from .address import WILDCARD_HOSTS
from .errors import ConfigError
from .protocol import is_valid_nick
from .version import VersionAction
from .web import normalise_origin

__all__ = ["PASSWORD_ENV", "PROG", "Config", "parse_args", "password_from_file"]

#: The environment variable that may hold the server password.
PASSWORD_ENV = "GEVENT_CHAT_PASSWORD"

# TCP keepalive on every accepted socket finds peers that vanished without a
# FIN or RST (a laptop closed, a NAT entry dropped): probe after 120 s of
# silence, then every 30 s; 4 unanswered probes drop the connection, about
# 4 minutes in all (Linux's own defaults would take over 2 hours).
KEEPALIVE_IDLE_SECONDS = 120
KEEPALIVE_INTERVAL_SECONDS = 30
KEEPALIVE_PROBES = 4

_SERVER_NAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: The server's one name in usage and error lines, however it was started.
PROG = "gevent-chat-server"


@dataclasses.dataclass(frozen=True)
class Config:
    """Server settings; defaults follow the protocol and the servers we learn from."""

    host: str = "0.0.0.0"
    #: The Go TCP-Chat listened on 8000; ``0`` picks a free port.
    port: int = 8000
    #: IRC allows 512 bytes a line; a chat line may carry pasted text, so 4096.
    max_line_bytes: int = 4096
    #: Messages one client may have waiting before it counts as too slow
    #: (ergo closes at its SendQ limit, 96 KiB by default).
    outbox_size: int = 1000
    #: Seconds to choose a nickname (ergo and ngircd allow about a minute).
    register_timeout: float = 60.0
    #: Seconds to flush outboxes on SIGINT/SIGTERM before closing.
    shutdown_timeout: float = 5.0
    #: Chat and /me lines each room remembers for newcomers (0: none).
    history: int = 50
    log_level: str = "info"

    # -- hardening -------------------------------------------------------------------
    #: Lines a second one client may send once registered; 0 disables flood
    #: control.  Over budget the server stops reading that socket (like ergo's
    #: fakelag), so the sender slows down and nothing is lost.
    rate_limit: float = 10.0
    #: Lines a client may send at once before the rate applies.
    rate_burst: int = 20
    #: Connections in all; the next one is told ``server full`` and closed.
    max_clients: int = 10000
    #: Connections from one address; 0 is unlimited (ngircd's MaxConnectionsIP).
    max_per_ip: int = 0
    #: Lines a connection may send before it has registered, then it is cut.
    max_unregistered_lines: int = 50
    #: Rooms one user may be in at once (a line user is in one; an IRC client may JOIN several).
    max_rooms_per_user: int = 20
    #: Seconds a registered user may stay silent before being disconnected; 0 is off.
    idle_timeout: float = 0.0
    #: PEM certificate chain (and key, if ``keyfile`` is not given): serve TLS.
    certfile: str | None = None
    keyfile: str | None = None
    #: Clients must send this before their nickname; never logged or shown.
    password: str | None = dataclasses.field(default=None, repr=False)
    #: Where ``password`` was read from (``main`` reads the file).
    password_file: str | None = None
    #: Seconds before ``wrong password`` is sent and the connection closed.
    password_delay: float = 1.0
    #: Wrong passwords one address may send per minute, then its connections
    #: are refused for the rest of that minute; 0 is unlimited.
    max_password_failures: int = 10
    #: Serve Prometheus metrics at ``http://metrics_host:metrics_port/metrics``.
    #: Server operators, ``NAME HASH`` a line (``core.opers``); read by the shell.
    opers_file: str | None = None
    #: Print a password hash for ``opers_file`` and exit.
    hash_password: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    # -- several processes ------------------------------------------------------------
    #: ``redis://HOST:PORT/DB``, ``rediss://HOST:PORT/DB`` (TLS; query options such as
    #: ``ssl_ca_certs=FILE``) or ``unix:///PATH``: join a cluster of servers there.
    redis_url: str | None = None
    #: The cluster's name, the prefix of its Redis keys (several may share one Redis).
    cluster: str = "gevent-chat"
    #: Seconds after which the nicks and users of a server that died are freed.
    nick_ttl: int = 30
    #: Milliseconds a publish waits for more lines to share its batch (0: the loop turn's only).
    redis_linger_ms: float = 0.0
    #: Server processes to start on one port (SO_REUSEPORT), supervised.
    workers: int = 1
    #: Bind the port with SO_REUSEPORT (set for the processes ``--workers`` starts).
    reuse_port: bool = False
    # -- the browser client ------------------------------------------------------------
    #: Serve the web page and its WebSocket on this port (None: off).
    web_port: int | None = None
    #: Address for ``web_port``; None means ``host``.
    web_host: str | None = None
    #: Origins besides the page's own whose pages may open the WebSocket.
    web_origins: tuple[str, ...] = ()
    #: Seconds of silence on a WebSocket before a ping; as long again for its answer.
    web_ping_interval: float = 30.0
    # -- IRC ----------------------------------------------------------------------------
    #: Serve IRC on this port (None: off); with ``certfile``, ``irc_tls_port`` serves it over TLS.
    irc_port: int | None = None
    irc_tls_port: int | None = None
    #: The server's name on IRC (the source of its replies); None: the host name.
    server_name: str | None = None
    #: Seconds of silence before an IRC client is pinged; no answer by the next ping drops it.
    irc_ping_interval: float = 120.0
    #: A file whose lines are the message of the day (None: ``422 MOTD File is missing``).
    motd_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, not {self.port}")
        if self.max_line_bytes < 1:
            raise ConfigError("--max-line-bytes must be at least 1")
        if self.outbox_size < 1:
            raise ConfigError("--outbox-size must be at least 1")
        if self.register_timeout <= 0:
            raise ConfigError("--register-timeout must be positive")
        if self.shutdown_timeout < 0:
            raise ConfigError("--shutdown-timeout must not be negative")
        if self.history < 0:
            raise ConfigError("--history must not be negative")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(f"--log-level must be one of {', '.join(_LOG_LEVELS)}")
        self._check_hardening()
        self._check_cluster()
        self._check_ports()

    def _check_cluster(self) -> None:
        if self.redis_url is not None and not self.redis_url.strip():
            raise ConfigError("--redis-url must not be empty")
        if not is_valid_nick(self.cluster):
            raise ConfigError("--cluster must be 1-32 letters, digits, _ - or ., not starting with - or .")
        if self.nick_ttl < 1:
            raise ConfigError("--nick-ttl must be at least 1 second")
        if not 0 <= self.redis_linger_ms <= 100:
            raise ConfigError("--redis-linger-ms must be 0-100")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        self._check_web()
        self._check_irc()

    def _check_irc(self) -> None:
        for flag, port in (("--irc-port", self.irc_port), ("--irc-tls-port", self.irc_tls_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ConfigError(f"{flag} must be 0-65535, not {port}")
        if self.irc_tls_port is not None and self.certfile is None:
            raise ConfigError("--irc-tls-port needs --certfile")
        if self.irc_ping_interval <= 0:
            raise ConfigError("--irc-ping-interval must be positive")
        if self.server_name is not None and not is_server_name(self.server_name):
            raise ConfigError("--server-name must be a host name such as irc.example.org")

    def _check_web(self) -> None:
        if self.web_port is not None and not 0 <= self.web_port <= 65535:
            raise ConfigError(f"--web-port must be 0-65535, not {self.web_port}")
        if self.web_ping_interval <= 0:
            raise ConfigError("--web-ping-interval must be positive")
        origins = []
        for origin in self.web_origins or ():
            try:
                origins.append(normalise_origin(origin))
            except ValueError as err:
                raise ConfigError(f"--web-origin: {err}") from None
        object.__setattr__(self, "web_origins", tuple(origins))

    def _check_ports(self) -> None:
        """No two of the ports share a number on one address: found here, before
        anything listens, not when the second bind fails."""
        bound = [(f"--port {self.port}", self.host, self.port, self.port)]
        if self.web_port is not None:
            host = self.host if self.web_host is None else self.web_host
            bound.append((f"--web-port {self.web_port}", host, self.web_port, self.web_port))
        if self.metrics_port is not None:
            last = self.metrics_port + self.workers - 1  # one each: --metrics-port, the next one, ...
            name = f"--metrics-port {self.metrics_port}"
            if self.workers > 1:
                name += f" (ports {self.metrics_port}-{last} for {self.workers} workers)"
            bound.append((name, self.metrics_host, self.metrics_port, last))
        for flag, port in (("--irc-port", self.irc_port), ("--irc-tls-port", self.irc_tls_port)):
            if port is not None:
                bound.append((f"{flag} {port}", self.host, port, port))
        for i, (name, host, first, last) in enumerate(bound):
            for other, other_host, other_first, other_last in bound[:i]:
                shared = first and other_first and first <= other_last and other_first <= last
                if shared and _may_overlap(host, other_host):
                    raise ConfigError(f"{name} and {other} would share a port: give each its own")

    def _check_hardening(self) -> None:
        if self.rate_limit < 0:
            raise ConfigError("--rate-limit must not be negative (0 disables it)")
        if self.rate_limit and self.rate_burst < 1:
            raise ConfigError("--rate-burst must be at least 1")
        if self.max_clients < 1:
            raise ConfigError("--max-clients must be at least 1")
        if self.max_per_ip < 0:
            raise ConfigError("--max-per-ip must not be negative (0 is unlimited)")
        if self.max_unregistered_lines < 0:
            raise ConfigError("--max-unregistered-lines must not be negative (0 is unlimited)")
        if self.max_rooms_per_user < 1:
            raise ConfigError("--max-rooms-per-user must be at least 1")
        if self.idle_timeout < 0:
            raise ConfigError("--idle-timeout must not be negative (0 is off)")
        if self.keyfile is not None and self.certfile is None:
            raise ConfigError("--keyfile needs --certfile")
        if self.password == "":
            raise ConfigError("the server password must not be empty")
        if self.password_delay < 0:
            raise ConfigError("--password-delay must not be negative")
        if self.max_password_failures < 0:
            raise ConfigError("--max-password-failures must not be negative (0 is unlimited)")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port must be 0-65535, not {self.metrics_port}")


def _may_overlap(host: str, other: str) -> bool:
    """Whether binding both hosts on one port may clash (names are not resolved)."""
    return host == other or host in WILDCARD_HOSTS or other in WILDCARD_HOSTS


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog=PROG,
        description="A line-based TCP chat server: connect with nc, telnet or gevent-chat.",
    )
    p.add_argument("--version", action=VersionAction, help="print the version and exit")
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s; '::' for IPv6)")
    p.add_argument(
        "--port", type=int, default=d.port, help="TCP port (default %(default)s; 0 picks a free one)"
    )
    p.add_argument(
        "--max-line-bytes",
        type=int,
        default=d.max_line_bytes,
        help="longest accepted line (default %(default)s)",
    )
    p.add_argument(
        "--outbox-size",
        type=int,
        default=d.outbox_size,
        help="messages queued for one client before it is cut as too slow (default %(default)s)",
    )
    p.add_argument(
        "--register-timeout",
        type=float,
        default=d.register_timeout,
        help="seconds to choose a nickname (default %(default)s)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=d.shutdown_timeout,
        help="seconds to flush output on SIGTERM/SIGINT (default %(default)s)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=d.history,
        help="chat lines each room replays to newcomers, 0 to disable (default %(default)s)",
    )
    p.add_argument(
        "--log-level", type=str.lower, default=d.log_level, choices=_LOG_LEVELS, help="(default %(default)s)"
    )
    _add_hardening(p, d)
    _add_opers(p)
    _add_cluster(p, d)
    _add_web(p, d)
    _add_irc(p, d)
    return p


def _add_opers(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server operators")
    g.add_argument(
        "--opers-file",
        help="file of server operators, one 'NAME HASH' a line; they /oper NAME PASSWORD (default: none)",
    )
    g.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (without echo, or from stdin), print its hash for --opers-file, and exit",
    )


def _add_cluster(p: argparse.ArgumentParser, d: Config) -> None:
    g = p.add_argument_group("several processes")
    g.add_argument(
        "--redis-url",
        help="redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS; ?ssl_ca_certs=FILE trusts a CA, see README) "
        "or unix:///PATH: run as one server of a cluster sharing that Redis",
    )
    g.add_argument(
        "--cluster",
        default=d.cluster,
        help="cluster name, the prefix of its Redis keys (default %(default)s)",
    )
    g.add_argument(
        "--nick-ttl",
        type=int,
        default=d.nick_ttl,
        help="seconds before a dead server's nicks and users are freed (default %(default)s)",
    )
    g.add_argument(
        "--redis-linger-ms",
        type=float,
        default=d.redis_linger_ms,
        help="milliseconds a line for other servers waits for more to share its Redis call: "
        "less CPU per line, that much more latency across servers (default %(default)s)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="server processes sharing --port, supervised; more than 1 without --redis-url "
        "starts a private redis-server (default %(default)s)",
    )
    g.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def _add_hardening(p: argparse.ArgumentParser, d: Config) -> None:
    g = p.add_argument_group("protections")
    g.add_argument(
        "--rate-limit",
        type=float,
        default=d.rate_limit,
        help="lines a second per client; a faster sender is slowed, not dropped (default %(default)s; 0 off)",
    )
    g.add_argument(
        "--rate-burst",
        type=int,
        default=d.rate_burst,
        help="lines sent at once before pacing (default %(default)s)",
    )
    g.add_argument(
        "--max-clients", type=int, default=d.max_clients, help="connections in all (default %(default)s)"
    )
    g.add_argument(
        "--max-per-ip",
        type=int,
        default=d.max_per_ip,
        help="connections from one address (default %(default)s = unlimited)",
    )
    g.add_argument(
        "--max-unregistered-lines",
        type=int,
        default=d.max_unregistered_lines,
        help="lines before registering, then cut (default %(default)s; 0 unlimited)",
    )
    g.add_argument(
        "--max-rooms-per-user",
        type=int,
        default=d.max_rooms_per_user,
        help="rooms one user may be in at once (default %(default)s)",
    )
    g.add_argument(
        "--idle-timeout",
        type=float,
        default=d.idle_timeout,
        help="seconds a registered user may stay silent (default %(default)s = off)",
    )
    g.add_argument("--certfile", help="PEM certificate chain: serve TLS on --port")
    g.add_argument("--keyfile", help="PEM private key (if not in --certfile)")
    g.add_argument(
        "--password-file",
        help=f"file whose first line is the server password (or set {PASSWORD_ENV})",
    )
    g.add_argument(
        "--password-delay",
        type=float,
        default=d.password_delay,
        help="seconds before a wrong password is answered (default %(default)s)",
    )
    g.add_argument(
        "--max-password-failures",
        type=int,
        default=d.max_password_failures,
        help="wrong passwords per address per minute, then refused (default %(default)s; 0 unlimited)",
    )
    g.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (0 picks one)")
    g.add_argument(
        "--metrics-host", default=d.metrics_host, help="address for --metrics-port (default %(default)s)"
    )


def _add_web(p: argparse.ArgumentParser, d: Config) -> None:
    g = p.add_argument_group("browser client")
    g.add_argument("--web-port", type=int, help="serve the browser client and its WebSocket on this port")
    g.add_argument("--web-host", help="address for --web-port (default: --host)")
    g.add_argument(
        "--web-origin",
        dest="web_origins",
        action="append",
        metavar="URL",
        help="another origin (scheme://host[:port]) whose pages may open the chat; repeatable",
    )
    g.add_argument(
        "--web-ping-interval",
        type=float,
        default=d.web_ping_interval,
        help="seconds of WebSocket silence before a ping, and for its answer (default %(default)s)",
    )


def _add_irc(p: argparse.ArgumentParser, d: Config) -> None:
    g = p.add_argument_group("IRC")
    g.add_argument("--irc-port", type=int, help="serve IRC on this port (default: off)")
    g.add_argument("--irc-tls-port", type=int, help="serve IRC over TLS on this port (needs --certfile)")
    g.add_argument("--server-name", help="the server's name on IRC (default: the host name)")
    g.add_argument(
        "--irc-ping-interval",
        type=float,
        default=d.irc_ping_interval,
        help="seconds of IRC silence before a PING; unanswered by the next, the client is dropped "
        "(default %(default)s)",
    )
    g.add_argument("--motd-file", help="file holding the IRC message of the day")


def is_server_name(name: str) -> bool:
    """True if ``name`` can be a server name on IRC: dot-separated labels of letters, digits, ``-``."""
    return _SERVER_NAME.fullmatch(name) is not None and len(name) <= 63


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Config:
    """Build a ``Config`` from command-line arguments and ``env``; raises ``ConfigError``.

    The password comes from ``env[PASSWORD_ENV]`` here; a ``--password-file``
    is only recorded, and the shell reads it (``with_password``).
    """
    ns = build_parser().parse_args(list(argv))
    fields = {f.name for f in dataclasses.fields(Config)}
    values = {k: v for k, v in vars(ns).items() if k in fields}
    values["web_origins"] = tuple(ns.web_origins or ())
    if ns.password_file is None and env is not None and env.get(PASSWORD_ENV):
        values["password"] = env[PASSWORD_ENV]
    return Config(**values)


def password_from_file(text: str) -> str:
    """The password in a password file: its first line, without the line ending."""
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError("the password file's first line is empty")
    return lines[0]
