"""The chat server: the wiring of config, registry, hub and transports.

SHELL.  ``ChatServer`` owns the listening ``StreamServer`` (a greenlet starts each
connection, running ``TcpTransport.handle``), with ``--web-port`` the web
port's ``WebTransport`` (the browser client), the registry and its
``BoundedSemaphore``, the ``Hub`` and its ``Bus``, graceful shutdown, and the
protections that act across all connections (the idle sweep, the metrics
endpoint).  ``main`` is the command line: ``python -m gevent_chat.server``.
It never monkey-patches: every socket here is a gevent socket already.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from ..core import config as cfg
from ..core import roomcommands
from ..core.address import browsable_url, format_address
from ..core.config import Config, parse_args
from ..core.effects import Disconnect
from ..core.errors import ChatError, ClientError, ConfigError
from ..core.limits import ConnectionLimits, FailureBudget
from ..core.names import alternate_nick
from ..core.registry import Registry
from ..core.serverbans import ServerBans
from . import tls
from .bus import Bus, LocalBus
from .hub import Hub
from .irc import IrcService
from .member import Member
from .metrics import Metrics
from .operators import hash_password_command, load_opers
from .tcp import Listener, TcpTransport
from .web import WebTransport
from .writers import WriterPool

if TYPE_CHECKING:
    from .redis import RedisBus

__all__ = ["ChatServer", "ListenError", "main"]

log = logging.getLogger("gevent_chat")


class ListenError(OSError):
    """A port could not be bound; the message names it once, and the option to change.

    ``cause.strerror`` is not used as is: gevent appends the address to it
    (``Address already in use: ('0.0.0.0', 8000)``).
    """

    def __init__(self, host: str, port: int, cause: OSError, option: str = "--port") -> None:
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        if cause.errno in (errno.EADDRINUSE, errno.EACCES):
            reason += f": choose another with {option}"
        elif cause.errno == errno.EADDRNOTAVAIL:
            reason += f": not an address of this machine ({option.replace('port', 'host')})"
        super().__init__(cause.errno, f"cannot listen on {format_address(host, port)}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)


class ChatServer:
    """A running chat service; ``start()`` returns at once, ``stop()`` is graceful."""

    def __init__(self, config: Config, bus: Bus | None = None) -> None:
        self.config = config
        #: The Redis engine with ``--redis-url`` (also the registry's directory); raises
        #: ``RedisUnavailable`` for a URL it cannot use.
        self.cluster: RedisBus | None = None
        if bus is None and config.redis_url is not None:
            bus = self.cluster = self._redis_bus(config)
        self.registry: Registry[Member] = Registry(
            BoundedSemaphore(1), config.history, self.cluster, config.max_rooms_per_user
        )
        self.connections: set[Member] = set()
        self.writers = WriterPool(config.outbox_size)
        self.stopping = False
        self._all_closed = Event()
        self._listener: Listener | None = None
        # -- protections --
        self.limits = ConnectionLimits(config.max_clients, config.max_per_ip)
        self.password_failures = FailureBudget(config.max_password_failures)
        #: The server operators of ``--opers-file``; raises ``ConfigError`` for a bad file.
        self.opers = load_opers(config)
        self.metrics = Metrics(lambda: len(self.connections), lambda: len(self.registry))
        self.bus = LocalBus() if bus is None else bus
        self.hub = Hub(self.registry, config.outbox_size, self.metrics.tally, self.bus)
        self.metrics_address: tuple[str, int] | None = None
        self.tls_context = tls.server_context(config.certfile, config.keyfile) if config.certfile else None
        self.tcp = TcpTransport(self)
        #: The browser client's port (``--web-port``), if any.
        self.web = WebTransport(self) if config.web_port is not None else None
        #: IRC's ports (``--irc-port``, ``--irc-tls-port``) and what IRC over ``/ws`` needs too.
        self.irc = IrcService(self)
        self.metrics.connected_by_transport.labels("tcp").set_function(
            lambda: (
                len(self.connections)
                - (len(self.web.links) if self.web is not None else 0)
                - len(self.irc.pinged)
            )
        )
        self._sweeper: gevent.Greenlet[[float], None] | None = None
        if self.cluster is not None:
            cluster = self.cluster
            cluster.subscriber.on_private = self.hub.receive_private
            cluster.subscriber.on_control = self._control
            cluster.held = lambda: [(room.name, room.state) for room in self.registry.rooms()]
            cluster.on_rules = self.registry.reload
            cluster.on_server_bans = self._server_bans
            self.metrics.watch_cluster(lambda: dataclasses.asdict(cluster.metrics), lambda: cluster.redis_up)

    def _redis_bus(self, config: Config) -> RedisBus:
        from .redis import RedisBus  # only with --redis-url: a lone server never loads redis-py

        return RedisBus(
            config.redis_url or "",
            cluster=config.cluster,
            history=config.history,
            nick_ttl=config.nick_ttl,
            linger=config.redis_linger_ms / 1000,
            on_lost_nick=self._lost_nick,
        )

    def _control(self, what: str, nick: str | None, text: str) -> None:
        """A word from another server (``wire.CONTROLS``), in the bus's greenlet: act, never wait."""
        if what == "kill" and nick is not None:
            member = self.registry.get(nick)
            if member is not None:
                log.info("%s disconnected by an operator on another server: %s", member.nick, text or "-")
                effect = roomcommands.killed(member, text)
                member.disconnect(effect.text, effect.reason)
        elif what == "gbans" and self.cluster is not None:
            gevent.spawn(self.cluster.read_server_bans)  # it waits on Redis

    def _server_bans(self, bans: ServerBans) -> None:
        """The server bans as every server keeps them: hold them, and disconnect whom a new one matches."""
        known = {ban.mask.text for ban in self.registry.server_bans.bans}
        self.registry.server_bans = bans
        for ban in bans.bans:
            if ban.mask.text not in known:
                for effect in roomcommands.banned_off(self.registry, ban):
                    if isinstance(effect, Disconnect):
                        log.info("%s disconnected: %s", effect.member.nick, effect.reason)
                        effect.member.disconnect(effect.text, effect.reason)

    def _lost_nick(self, nick: str) -> None:
        gevent.spawn(self._rename_lost, nick)  # it waits on Redis; the bus's callbacks must not

    def _rename_lost(self, nick: str) -> None:
        """Another server took ``nick`` while this one was cut off: rename our user, and say so."""
        member = self.registry.get(nick)
        if member is None or member.nick is None:
            return
        why = f"nickname {member.nick} was taken on another server"
        for candidate in [alternate_nick(member.nick, attempt) for attempt in range(1, 10)]:
            if self.registry.get(candidate) is not None:
                continue
            try:
                effects = member.session.force_rename(candidate, why)
            except ClientError:
                continue
            self.hub.apply(member, effects)
            return
        member.finish(member.goodbye(f"{why}, and no other was free"), "nick lost")

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the port is real even with ``port=0``)."""
        assert self._listener is not None, "start() first"
        return self._listener.bound

    def start(self) -> None:
        """Bind and start accepting in the background; raises ``ListenError``."""
        # Raw greenlets for the readers: a parked ``Greenlet`` object costs
        # about 1 KB more per connection, and nothing here needs its links.
        # The stubs know only Greenlet-returning spawns; any callable works.
        config = self.config
        if self.cluster is not None:
            self.cluster.start()  # raises RedisUnavailable
        try:
            if config.reuse_port:
                from .supervisor import reusable_socket

                listener = Listener(
                    reusable_socket(config.host, config.port), self.tcp.handle, spawn=gevent.spawn_raw
                )
            else:
                listener = Listener((config.host, config.port), self.tcp.handle, spawn=gevent.spawn_raw)
            listener.start()
        except OSError as err:
            if self.cluster is not None:
                self.cluster.close(timeout=0)
            raise ListenError(config.host, config.port, err) from err
        self._listener = listener
        log.info("listening on %s%s", format_address(*self.address), " (TLS)" if self.tls_context else "")
        if self.web is not None:
            self._start_web(self.web)
        self._start_irc()
        if config.metrics_port is not None:
            try:
                self.metrics_address = self.metrics.serve(
                    config.metrics_host, config.metrics_port, _spare_descriptors(config.max_clients)
                )
            except OSError as err:
                listener.stop(timeout=0)
                raise ListenError(config.metrics_host, config.metrics_port, err, "--metrics-port") from err
            log.info("metrics on %s", browsable_url("http", *self.metrics_address, "/metrics"))
        if config.idle_timeout:
            self._sweeper = gevent.spawn(self._sweep_idle, config.idle_timeout)

    def _start_web(self, web: WebTransport) -> None:
        config = self.config
        host = config.host if config.web_host is None else config.web_host
        try:
            web.start()
        except OSError as err:
            assert self._listener is not None
            self._listener.stop(timeout=0)
            raise ListenError(host, config.web_port or 0, err, "--web-port") from err
        scheme = "https" if self.tls_context else "http"
        log.info("browser client on %s", browsable_url(scheme, *web.address))

    def _start_irc(self) -> None:
        irc = self.irc
        try:
            irc.start()
        except OSError as err:
            failed = next(p for p in irc.ports if not p.started)
            irc.close()
            assert self._listener is not None
            self._listener.stop(timeout=0)
            if self.web is not None:
                self.web.stop()
            flag = "--irc-tls-port" if failed.tls_context is not None else "--irc-port"
            raise ListenError(self.config.host, failed.port, err, flag) from err
        for port in irc.ports:
            log.info("IRC%s on %s", " (TLS)" if port.tls_context else "", format_address(*port.address))

    @property
    def irc_addresses(self) -> list[tuple[str, int]]:
        """The IRC ports' bound addresses, plain first."""
        return [port.address for port in self.irc.ports]

    @property
    def web_address(self) -> tuple[str, int]:
        """The web port's bound address; ``--web-port`` must be set."""
        assert self.web is not None, "no --web-port"
        return self.web.address

    def _sweep_idle(self, limit: float) -> None:
        """Disconnect registered users silent for ``limit`` seconds; runs until stop."""
        period = min(1.0, limit / 4)
        text = f"disconnected: idle for {limit:g} seconds"
        idle = self.metrics.timeouts.labels("idle")
        while True:
            gevent.sleep(period)
            oldest = time.monotonic() - limit
            for conn in list(self.connections):
                if conn.nick is not None and conn.heard <= oldest and not conn.closing:
                    idle.inc()
                    conn.finish(conn.goodbye(text), "idle")

    def forget(self, conn: Member) -> None:
        """Called by a connection as its last act."""
        self.connections.discard(conn)
        self.irc.pinged.pop(conn, None)
        if self.stopping and not self.connections:
            self._all_closed.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, tell everyone, flush for at most ``timeout`` seconds, close."""
        if timeout is None:
            timeout = self.config.shutdown_timeout
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        if self.web is not None:
            self.web.close()
        self.irc.close()
        if self._sweeper is not None:
            self._sweeper.kill()
        conns = list(self.connections)
        log.info("shutting down: %d connection(s)", len(conns))
        for conn in conns:
            conn.deliver(conn.goodbye("server shutting down"))
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
        if self.web is not None:
            self.web.stop()
        self.irc.stop()
        self.metrics.close()
        self.bus.close()
        log.info("stopped")


def _with_password_file(config: Config) -> Config:
    """Read ``--password-file`` (shell work kept out of the pure config)."""
    if config.password_file is None:
        return config
    try:
        text = Path(config.password_file).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--password-file: {err.strerror or err}") from err
    return dataclasses.replace(config, password=cfg.password_from_file(text))


#: Descriptors a server needs besides its clients' (listeners, log, metrics, spare).
SPARE_DESCRIPTORS = 32


def _spare_descriptors(max_clients: int) -> int:
    """Descriptors this process has beyond what its clients and listeners may take."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return sys.maxsize
    return soft - max_clients - SPARE_DESCRIPTORS


def _raise_descriptor_limit(max_clients: int) -> None:
    """Raise the soft RLIMIT_NOFILE to the hard one; warn if clients still cannot all fit.

    The usual soft limit, 1024, is far below ``--max-clients``' default, and
    past it connections wait in the backlog instead of being told
    ``server full``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, max_clients + SPARE_DESCRIPTORS)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as err:
            log.debug("cannot raise the descriptor limit: %s", err)
    if max_clients + SPARE_DESCRIPTORS > soft:
        log.warning(
            "--max-clients %d is more than this process's %d file descriptors allow; "
            "raise the limit (ulimit -n) or lower --max-clients",
            max_clients,
            soft,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; returns the exit status."""
    try:
        config = _with_password_file(parse_args(sys.argv[1:] if argv is None else argv, os.environ))
        if config.hash_password:
            return hash_password_command()
        load_opers(config)  # a bad file stops the server here, with its line number
    except ConfigError as err:
        print(f"{cfg.PROG}: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    if config.workers > 1:
        from .supervisor import supervise

        return supervise(config, list(sys.argv[1:] if argv is None else argv))
    _raise_descriptor_limit(config.max_clients)
    try:
        server = ChatServer(config)
    except OSError as err:  # unreadable certificate or key
        log.error("cannot load TLS certificate: %s", err.strerror or err)
        return 1
    except ChatError as err:  # RedisUnavailable: a --redis-url it cannot use
        log.error("%s", err)
        return 1
    try:
        server.start()
    except (ListenError, ChatError) as err:  # ChatError: RedisUnavailable
        log.error("%s", err)
        return 1
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    log.info("signal received")
    server.stop()
    return 0
