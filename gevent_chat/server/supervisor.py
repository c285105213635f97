"""``--workers N``: N server processes on one port, supervised.

SHELL.  The supervisor binds the port once with ``SO_REUSEPORT`` (without
listening, so it is never handed a connection) and starts N workers, each
``python -m gevent_chat.server`` with ``--reuse-port`` on that port: the
kernel spreads new connections over them.  The workers form one chat
through Redis: ``--redis-url``, or, without it, a private ``redis-server``
started here on a Unix socket in a temporary directory, with no
persistence, and stopped with the workers.

A worker that dies is logged and started again (after a pause that grows
while it keeps dying at once).  SIGTERM or SIGINT stops every worker with
SIGTERM (each shuts down gracefully), then Redis; the exit status is 0.
Each worker's log lines are passed on to the supervisor's stderr, tagged
``[worker N]``; the supervisor's own ``N workers listening on HOST:PORT``
comes once every worker listens.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket as stdsocket
import sys
import tempfile
import time
from pathlib import Path

import gevent
from gevent import socket, subprocess
from gevent.event import Event

from ..core.address import format_address
from ..core.config import Config, build_parser
from .app import ListenError

__all__ = ["reusable_socket", "supervise"]

log = logging.getLogger("gevent_chat")

#: Seconds a private redis-server has to answer PING.
REDIS_START_SECONDS = 10.0
#: A worker that lived this long before dying is restarted at once.
STABLE_SECONDS = 10.0
#: Restart pauses for a worker that keeps dying at once: first, then doubling up to this.
RESTART_FIRST_SECONDS = 0.2
RESTART_MAX_SECONDS = 5.0
#: Seconds the workers have to stop, beyond their own --shutdown-timeout.
STOP_MARGIN_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def reusable_socket(host: str, port: int, listen: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (listening unless ``listen`` is False)."""
    family = stdsocket.AF_INET6 if ":" in host else stdsocket.AF_INET
    sock = socket.socket(family, stdsocket.SOCK_STREAM)
    try:
        sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
        sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(stdsocket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    """In a child: get SIGTERM if the supervisor dies (Linux), so no worker outlives it."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _pings(path: str) -> bool:
    try:
        with socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM) as conn:
            conn.settimeout(0.5)
            conn.connect(path)
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """A redis-server on a Unix socket in a temporary directory, no persistence."""

    def __init__(self, binary: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gevent-chat-redis-"))
        self.path = str(self.dir / "redis.sock")
        args = [binary, "--port", "0", "--unixsocket", self.path, "--unixsocketperm", "700"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def wait_ready(self) -> bool:
        deadline = time.monotonic() + REDIS_START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if _pings(self.path):
                return True
            gevent.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker:
    """One server process, restarted when it dies until ``stopping`` is set."""

    def __init__(self, number: int, argv: list[str], stopping: Event) -> None:
        self.number = number
        self.argv = argv
        self.stopping = stopping
        self.listening = Event()
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        pause = RESTART_FIRST_SECONDS
        while not self.stopping.is_set():
            started = time.monotonic()
            self.listening.clear()
            proc = self.proc = subprocess.Popen(
                [sys.executable, "-m", "gevent_chat.server", *self.argv],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
            log.info("worker %d started (pid %d)", self.number, proc.pid)
            forward = gevent.spawn(self._forward, proc)
            status = proc.wait()
            forward.join(timeout=1)
            if self.stopping.is_set():
                log.info("worker %d (pid %d) stopped: status %s", self.number, proc.pid, status)
                return
            log.warning("worker %d (pid %d) exited with status %s; restarting", self.number, proc.pid, status)
            if time.monotonic() - started >= STABLE_SECONDS:
                pause = RESTART_FIRST_SECONDS
            self.stopping.wait(pause)
            pause = min(RESTART_MAX_SECONDS, pause * 2)

    def _forward(self, proc: subprocess.Popen[bytes]) -> None:
        """Pass the worker's log on, tagged; note when it listens."""
        assert proc.stderr is not None
        tag = f" [worker {self.number}]\n".encode()
        out = sys.stderr.buffer
        for raw in proc.stderr:
            if b"listening on " in raw:
                self.listening.set()
            out.write(raw.rstrip(b"\n") + tag)
            out.flush()

    def terminate(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()


def _worker_argv(config: Config, argv: list[str], number: int, port: int, url: str) -> list[str]:
    """The worker's command line: the supervisor's, with the options set here replaced.

    Replaced, not overridden by repeating them last: ``ps`` would show
    ``--workers 2 ... --workers 1`` and two ports.
    """
    extra = ["--reuse-port", "--port", str(port), "--redis-url", url]
    if config.metrics_port:  # one port each: --metrics-port, the next one, ...
        extra += ["--metrics-port", str(config.metrics_port + number - 1)]
    replaced = {"--workers", *(option for option in extra if option.startswith("--"))}
    return [*_without_options(argv, replaced), *extra]


def _without_options(argv: list[str], names: set[str]) -> list[str]:
    """``argv`` less the options ``names`` and their values, in any spelling argparse
    takes (``--port 1``, ``--port=1``, a unique prefix such as ``--wor 2``)."""
    actions = build_parser()._option_string_actions  # argparse's own table of option strings
    kept: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        name, equals, _ = token.partition("=")
        matches = [s for s in actions if s == name] or [s for s in actions if s.startswith(name)]
        action = actions[matches[0]] if token.startswith("--") and len(matches) == 1 else None
        if action is None or not names.intersection(action.option_strings):
            kept.append(token)
        elif action.nargs != 0 and not equals:
            next(tokens, None)  # its value
    return kept


def supervise(config: Config, argv: list[str]) -> int:
    """Run ``config.workers`` workers until SIGTERM or SIGINT; returns the exit status."""
    redis: PrivateRedis | None = None
    url = config.redis_url
    if url is None:
        binary = shutil.which("redis-server")
        if binary is None:
            print(
                "gevent-chat-server: --workers needs Redis: install redis-server "
                "(Debian: apt-get install redis-server) or pass --redis-url",
                file=sys.stderr,
            )
            return 2
        redis = PrivateRedis(binary)
        if not redis.wait_ready():
            log.error("the private redis-server did not start")
            redis.stop()
            return 1
        url = redis.url
        log.info("private redis-server on %s (pid %d)", redis.path, redis.proc.pid)
    try:
        return _run_workers(config, argv, url)
    finally:
        if redis is not None:
            redis.stop()


def _announce(config: Config, port: int, workers: list[Worker]) -> None:
    """Say where the workers listen, once they all do."""
    for worker in workers:
        worker.listening.wait()
    log.info("%d workers listening on %s", len(workers), format_address(config.host, port))


def _run_workers(config: Config, argv: list[str], url: str) -> int:
    try:
        holder = reusable_socket(config.host, config.port, listen=False)  # fixes the port, never accepts
    except OSError as err:
        log.error("%s", ListenError(config.host, config.port, err))
        return 1
    port = int(holder.getsockname()[1])
    stopping, stop = Event(), Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    workers = [
        Worker(n, _worker_argv(config, argv, n, port, url), stopping) for n in range(1, config.workers + 1)
    ]
    runners = [gevent.spawn(w.run) for w in workers]
    ready = gevent.spawn(_announce, config, port, workers)
    stop.wait()
    log.info("signal received: stopping %d workers", len(workers))
    stopping.set()
    ready.kill()
    for worker in workers:
        worker.terminate()
    gevent.joinall(runners, timeout=config.shutdown_timeout + STOP_MARGIN_SECONDS)
    for worker in workers:
        worker.kill()
    gevent.joinall(runners, timeout=2)
    holder.close()
    log.info("stopped")
    return 0
