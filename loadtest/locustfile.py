"""Locust load test of gevent-chat: many raw-TCP chat users in one room.

Run it from the repository root against a running server::

    locust -f loadtest/locustfile.py --headless -u 100 -r 50 -t 20s --host 127.0.0.1:8000
    locust ... -u 500 -r 100 --chat-sample 10 --processes 2    # more users than one process can time
    locust -f loadtest/locustfile.py --host 127.0.0.1:8000     # web UI on http://127.0.0.1:8089
    locust -f loadtest/locustfile.py,loadtest/stepped.py ...   # ramp up in steps (see stepped.py)

Each user connects, registers a unique nick, then says a line every
``--chat-interval`` seconds, while a reader greenlet takes in everything the
server sends.  What locust reports (type, name):

- ``TCP connect``: time to open the connection;
- ``TCP register``: time from sending the nick to the welcome line;
- ``CHAT say``: lines sent (the time is that of ``sendall``);
- ``CHAT deliver``: one per received line (1 in ``--chat-sample``); the time
  is the end-to-end latency, from the sender's clock to the receiver's;
- failures: ``CHAT lost`` (one per line missing from a sender's sequence),
  ``CHAT out of order``, ``CHAT error`` (a ``*** error`` line from the
  server), ``TCP disconnect`` (the server closed the connection or cut us as
  too slow); a user that lost its connection reconnects under a new nick.

Before any user starts, the master (or the only process) checks ``--host``
once: a host it cannot parse or reach is one error line and exit status 2,
before any user is spawned or statistics printed, rather than a failed
connect per user per second (in the web UI, the run is stopped instead).

The wire format and the loss rules are in ``chatload.py`` (pure, tested on
its own).  SHELL: this module only moves bytes between gevent sockets and
``chatload``, and reports to locust; it must never block the hub (every
socket here is a gevent socket) nor leave a socket open when a user stops.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from typing import Any

import gevent

# locust puts this file's folder on sys.path, wherever it is run from
from chatload import DEFAULT_PORT, PROMPT, Receiver, Report, chat_text, make_nick, parse_address
from gevent import socket
from locust import User, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

#: Seconds to connect, and again to register, before the attempt is a failure.
CONNECT_TIMEOUT = 10.0
#: One ``recv`` takes at most this much.
RECV_BYTES = 65536

#: Exit status of a run whose ``--host`` is unusable (locust's own for a failed run is 1).
BAD_HOST_EXIT = 2
#: Seconds a master with an unusable ``--host`` waits for its workers, to tell them to quit.
WORKERS_WAIT = 10.0

_nick_numbers = itertools.count(1)
_tag: tuple[int, str] | None = None  # (pid, tag) of this process
#: Why ``--host`` is unusable, once the start-of-test check found out; users then never connect.
_host_problem: str | None = None
logger = logging.getLogger(__name__)


class ChatFailure(Exception):
    """Something a chat operator would call a failure.  Messages form a small set."""


class LineLost(ChatFailure):
    pass


class LineOutOfOrder(ChatFailure):
    pass


class ServerErrorLine(ChatFailure):
    pass


class Disconnected(ChatFailure):
    pass


class RegisterRefused(ChatFailure):
    pass


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--chat-interval",
        type=float,
        default=1.0,
        help="seconds between two lines of one user (default 1.0)",
    )
    parser.add_argument(
        "--chat-payload",
        type=int,
        default=32,
        help="bytes of text per line, at least the seq=N t=T header (default 32)",
    )
    parser.add_argument(
        "--chat-sample",
        type=int,
        default=1,
        help="report the latency of 1 received line in N, for very large runs (default 1)",
    )


def host_problem(host: str) -> str | None:
    """Why no chat user could work against ``host`` (unparseable, refused, unreachable), or None."""
    try:
        address = parse_address(host)
    except ValueError as exc:
        return str(exc)
    try:
        probe = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
    except OSError as exc:  # refused, unreachable, unknown name, timed out
        return f"cannot connect to the chat server at {host}: {exc.strerror or exc}"
    probe.close()
    return None


def _starts_at_once(environment: Environment) -> bool:
    """Headless or ``--autostart``: the run starts by itself, with the ``--host`` given."""
    return bool(_option(environment, "headless", True) or _option(environment, "autostart", False))


@events.init.add_listener
def _check_host_before_starting(environment: Environment, runner: Any = None, **_kwargs: Any) -> None:
    """A run that starts by itself ends before it starts if ``--host`` is unusable.

    One error line and exit status 2, before any user is spawned or any
    statistics table printed: locust fires ``init`` before it starts the run
    (an event hook lets ``SystemExit`` through).  Only the master (or the
    only process) checks: with ``--processes`` the workers would otherwise
    each say the same; locust stops them when the master exits.
    """
    if runner is None or isinstance(runner, WorkerRunner) or not _starts_at_once(environment):
        return
    problem = host_problem(environment.host or ChatUser.host)
    if problem is None:
        return
    logger.error("%s", problem)
    if isinstance(runner, MasterRunner):
        _quit_workers(runner, _option(environment, "expect_workers", 1))
    raise SystemExit(BAD_HOST_EXIT)


def _quit_workers(runner: MasterRunner, expected: int) -> None:
    """Tell the workers to quit, once those expected have connected (or after a while).

    Exiting alone would leave them (``--processes`` forks them first) waiting
    for the master's heartbeat for a minute.
    """
    deadline = time.monotonic() + WORKERS_WAIT
    while len(runner.clients.ready) < expected and time.monotonic() < deadline:
        gevent.sleep(0.05)
    runner.quit()


@events.test_start.add_listener
def _check_host(environment: Environment, **_kwargs: Any) -> None:
    """In the web UI, stop a run whose host is unusable, with one clear line.

    The host may be corrected there and the run started again, so each
    start checks.  The run is stopped from a greenlet of its own, because
    ``stop`` kills the greenlet that fires this event; users spawned
    meanwhile see ``_host_problem`` and never connect.  (A run that starts
    by itself was checked at ``init``.)
    """
    global _host_problem
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner) or _starts_at_once(environment):
        return
    _host_problem = host_problem(environment.host or ChatUser.host)
    if _host_problem is None:
        return
    logger.error("%s", _host_problem)
    gevent.spawn(runner.stop)


def next_nick() -> str:
    """A nick no other user of this run has: process id, a random tag, a counter.

    Computed per process (``--processes`` forks after this module is loaded),
    with a random part for workers on other machines that share a pid.
    """
    global _tag
    pid = os.getpid()
    if _tag is None or _tag[0] != pid:
        _tag = (pid, f"{pid}_{random.getrandbits(16):04x}")
    return make_nick(_tag[1], next(_nick_numbers))


def _option(environment: Environment, name: str, default: Any) -> Any:
    options = environment.parsed_options
    return getattr(options, name, default) if options is not None else default


class ChatClient:
    """One chat connection, reporting every outcome as a locust request event.

    ``open()`` connects and registers; then a reader greenlet checks and times
    everything received, and ``say()`` sends one numbered line.  Network
    errors never escape: they are reported (``TCP disconnect`` once per
    connection) and leave the client closed.  ``close()`` is idempotent.
    """

    def __init__(self, environment: Environment, host: str, nick: str, sample: int) -> None:
        self.fire = environment.events.request.fire
        self.host = host
        self.nick = nick
        self.sample = sample
        self.sock: socket.socket | None = None
        self.reader: gevent.Greenlet[..., None] | None = None
        self.closed = False
        self.seq = 0
        self._sent_nick = 0.0

    def open(self) -> bool:
        """Connect and register; True if the welcome came."""
        start = time.perf_counter()
        try:
            address = parse_address(self.host)
            sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        except (OSError, ValueError) as exc:
            self._report("TCP", "connect", start, 0, exc)
            self.closed = True
            return False
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._report("TCP", "connect", start, 0)
        try:
            rest = self._register()
        except (OSError, ChatFailure) as exc:
            self.close()
            self._report("TCP", "register", self._sent_nick or start, 0, exc)
            return False
        sock.settimeout(None)
        self.reader = gevent.spawn(self._read_loop, sock, rest)
        return True

    def _register(self) -> bytes:
        """Answer the prompt with our nick; return what came after the welcome line."""
        assert self.sock is not None
        sock = self.sock
        sock.settimeout(CONNECT_TIMEOUT)
        buf = b""
        while PROMPT not in buf:
            buf = self._recv_more(buf)
        buf = buf.split(PROMPT, 1)[1]
        self._sent_nick = time.perf_counter()
        sock.sendall(self.nick.encode() + b"\n")
        while True:
            while b"\n" not in buf:
                buf = self._recv_more(buf)
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"*** Welcome, "):
                self._report("TCP", "register", self._sent_nick, len(line))
                return buf
            if line.startswith(b"*** "):
                raise RegisterRefused(line.decode("utf-8", "replace"))

    def _recv_more(self, buf: bytes) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise Disconnected("closed by server")
        return buf + data

    def say(self, size: int) -> None:
        """Send the next numbered line of ``size`` bytes of text."""
        if self.closed or self.sock is None:
            return
        self.seq += 1
        line = chat_text(self.seq, time.time(), size) + b"\n"
        start = time.perf_counter()
        try:
            self.sock.sendall(line)
        except OSError as exc:
            self._lost(type(exc).__name__)
            return
        self._report("CHAT", "say", start, len(line))

    def _read_loop(self, sock: socket.socket, rest: bytes) -> None:
        """The reader greenlet: ends at EOF, on an error, or when ``close()`` closes the socket.

        It is given the socket rather than reading ``self.sock``: a user that
        stops right after registering can ``close()`` (and clear ``self.sock``)
        before this greenlet first runs, and then it must end without a word.
        """
        if self.closed:
            return
        recv = sock.recv
        receiver = Receiver(self.sample)
        reason = "closed by server"
        data = rest
        try:
            while True:
                if data:
                    report = receiver.feed(data, time.time())
                    self._publish(report)
                    if report.closing:
                        reason = report.closing
                data = recv(RECV_BYTES)
                if not data:
                    break
        except OSError as exc:
            if self.closed:
                return  # our own close() woke us
            reason = type(exc).__name__
        self._lost(reason)

    def _publish(self, report: Report) -> None:
        fire = self.fire
        for latency, length in report.delivered:
            fire(request_type="CHAT", name="deliver", response_time=latency, response_length=length)
        for _ in range(report.lost):
            self._chat_failure("lost", LineLost("a gap in one sender's sequence"))
        for _ in range(report.out_of_order):
            self._chat_failure(
                "out of order", LineOutOfOrder("a line came after a later one from the same sender")
            )
        for text in report.errors:
            self._chat_failure("error", ServerErrorLine(text), len(text))

    def _chat_failure(self, name: str, exc: Exception, length: int = 0) -> None:
        self.fire(request_type="CHAT", name=name, response_time=0, response_length=length, exception=exc)

    def _lost(self, reason: str) -> None:
        """The server ended this connection: report it once, then close."""
        if self.closed:
            return
        self.fire(
            request_type="TCP",
            name="disconnect",
            response_time=0,
            response_length=0,
            exception=Disconnected(reason),
        )
        self.close()

    def _report(self, kind: str, name: str, start: float, length: int, exc: Exception | None = None) -> None:
        self.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=length,
            exception=exc,
        )

    def close(self) -> None:
        """Close the socket; the reader, blocked in ``recv``, wakes up and ends quietly."""
        self.closed = True
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class ChatUser(User):
    """A chat connection that lives as long as the user, reconnecting after a loss.

    Abstract: subclasses add the tasks.  ``self.client`` is the current
    ``ChatClient`` (None before the first attempt); ``connect()`` replaces a
    closed one with a new connection under a new nick.
    """

    abstract = True
    host = f"127.0.0.1:{DEFAULT_PORT}"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client: ChatClient | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed

    def connect(self) -> bool:
        if _host_problem is not None:
            return False  # the run is being stopped: see _check_host
        sample = max(1, int(_option(self.environment, "chat_sample", 1)))
        self.client = ChatClient(self.environment, self.host or ChatUser.host, next_nick(), sample)
        return self.client.open()

    def on_start(self) -> None:
        self.connect()

    def on_stop(self) -> None:
        if self.client is not None:
            self.client.close()


class Chatter(ChatUser):
    """Says a line every ``--chat-interval`` seconds (the first at a random moment)."""

    def on_start(self) -> None:
        self.interval = max(0.0, float(_option(self.environment, "chat_interval", 1.0)))
        self.payload = max(0, int(_option(self.environment, "chat_payload", 32)))
        # Spread the users' lines over the interval rather than all at once.
        self._due = time.monotonic() - random.random() * self.interval
        super().on_start()

    def wait_time(self) -> float:
        """Keep a steady pace: the time a send took comes out of the wait."""
        self._due += self.interval
        now = time.monotonic()
        if self._due < now:
            self._due = now  # behind: carry on from now, never burst to catch up
        return self._due - now

    @task
    def say(self) -> None:
        if not self.connected:
            self.connect()
            return
        assert self.client is not None
        self.client.say(self.payload)
