"""Smoke runs of the locust load test: it sees deliveries, and it sees losses.

Locust runs headless as a subprocess for a few seconds, once against the real
server (a subprocess) and once against a faulty server made here that drops
and reorders relayed lines; its ``--csv`` statistics tell what it saw.  Two
more runs check how it ends: users stopped mid-registration leave no
traceback, and an unusable ``--host`` is one error line and exit status 2.
``gevent.subprocess`` lets the in-process faulty server run while we wait.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from gevent import socket, subprocess
from gevent.lock import Semaphore
from gevent.pool import Pool
from gevent.server import StreamServer

from gevent_chat.core import protocol
from gevent_chat.core.events import Said
from gevent_chat.core.lines import render as render_line
from tests.helpers import free_port

REPO = Path(__file__).resolve().parent.parent
LOCUST = Path(sys.executable).with_name("locust")
#: Seconds a server subprocess gets to say where it listens.
START_TIMEOUT = 10.0
#: Seconds a whole locust run may take (its own run time is 3 s).
RUN_TIMEOUT = 40.0

# Longer than the default 10 s: each test is one locust run (3 s of load, about
# 1-3 s to start and stop), which a loaded 2-core machine can slow down a lot.
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def chat_server() -> Iterator[str]:
    """The real server as a subprocess on an ephemeral port; yields ``HOST:PORT``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    log: list[bytes] = []
    reader: gevent.Greenlet[[], None] | None = None

    def drain() -> None:  # the server logs every connection: keep its pipe from filling
        for line in stderr:
            log.append(line)

    try:
        with gevent.Timeout(START_TIMEOUT, AssertionError("server did not say where it listens")):
            first = stderr.readline()
        m = re.search(rb"listening on (\S+:\d+)", first)
        assert m, first
        reader = gevent.spawn(drain)
        yield m.group(1).decode()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if reader is not None:
        reader.join(timeout=5)
    assert not any(b"Traceback" in line for line in log), b"".join(log).decode()


class FaultyChatServer:
    """Speaks enough of the protocol for the load test, but loses lines.

    Of every 7 lines a client says, the 3rd is never relayed and the 5th is
    relayed after the 6th.  It keeps no room state beyond who is connected.
    """

    def __init__(self) -> None:
        self.clients: dict[str, tuple[socket.socket, Semaphore]] = {}
        self.server = StreamServer(("127.0.0.1", 0), self.handle, spawn=Pool())

    def handle(self, sock: socket.socket, _addr: tuple[str, int]) -> None:
        nick = ""
        try:
            sock.sendall(protocol.NICK_PROMPT)
            lines = sock.makefile("rb")
            nick = lines.readline().strip().decode()
            sock.sendall(protocol.notice(f"Welcome, {nick}! {len(self.clients) + 1} users online"))
            self.clients[nick] = (sock, Semaphore())
            held = None
            for n, raw in enumerate(lines, start=1):
                line = render_line(Said("lobby", nick, (raw.rstrip(b"\r\n"),)))
                if n % 7 == 3:
                    continue  # lost
                if n % 7 == 5:
                    held = line  # to be sent late
                    continue
                self.relay(nick, line)
                if held is not None:
                    self.relay(nick, held)
                    held = None
        except OSError:
            pass  # the client went away
        finally:
            self.clients.pop(nick, None)
            sock.close()

    def relay(self, sender: str, line: bytes) -> None:
        for nick, (sock, lock) in list(self.clients.items()):
            if nick != sender:
                with lock:  # one writer per socket at a time
                    try:
                        sock.sendall(line)
                    except OSError:
                        pass  # its own handler sees the error and cleans up


@pytest.fixture
def faulty_server() -> Iterator[str]:
    faulty = FaultyChatServer()
    faulty.server.start()
    try:
        yield f"{faulty.server.server_host}:{faulty.server.server_port}"
    finally:
        faulty.server.stop(timeout=1)


def run_locust(
    host: str, tmp_path: Path, *extra: str, users: int = 5, run_time: str = "3s"
) -> tuple[int, dict[str, dict[str, str]], str]:
    """Run the locustfile headless (3 s, 5 users); returns (exit code, CSV rows by name, output)."""
    prefix = tmp_path / "run"
    if "--processes" in extra:
        # locust's master binds 5557 by default; an ephemeral one keeps parallel runs apart.
        port = str(free_port())
        extra = (*extra, "--master-bind-port", port, "--master-port", port)
    # A session of its own: with --processes locust forks workers, and on a
    # timeout the whole group (locust and its workers, by the group id that is
    # locust's pid) is killed, so no worker keeps our pipes open.
    proc = subprocess.Popen(
        [
            str(LOCUST),
            "-f",
            "loadtest/locustfile.py",
            "--headless",
            "--only-summary",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            run_time,
            "--chat-interval",
            "0.1",
            "--host",
            host,
            "--csv",
            str(prefix),
            *extra,
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"locust still running after {RUN_TIMEOUT} s:\n{stdout.decode()}{stderr.decode()}")
    output = stdout.decode() + stderr.decode()
    if not Path(f"{prefix}_stats.csv").exists():
        pytest.fail(f"locust wrote no statistics (exit {proc.returncode}):\n{output}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    return proc.returncode, rows, output


def count(rows: dict[str, dict[str, str]], name: str, column: str = "Request Count") -> int:
    return int(rows[name][column]) if name in rows else 0


def test_run_against_the_server_sees_deliveries_and_no_failures(chat_server: str, tmp_path: Path) -> None:
    code, rows, output = run_locust(chat_server, tmp_path)
    assert count(rows, "deliver") > 0, output
    assert count(rows, "Aggregated", "Failure Count") == 0, output
    assert code == 0, output
    assert "Traceback" not in output, output


def test_run_with_two_processes_sees_deliveries_and_no_failures(chat_server: str, tmp_path: Path) -> None:
    code, rows, output = run_locust(chat_server, tmp_path, "--processes", "2")
    # Every user registered (a taken nick would be a failure). Locust may move
    # users between its worker processes as they start, which registers more.
    assert count(rows, "register") >= 5, output
    assert count(rows, "deliver") > 0, output
    assert count(rows, "Aggregated", "Failure Count") == 0, output
    assert code == 0, output
    assert "Traceback" not in output, output


def test_run_against_a_faulty_server_reports_lost_and_late_lines(faulty_server: str, tmp_path: Path) -> None:
    code, rows, output = run_locust(f"tcp://{faulty_server}", tmp_path)
    assert count(rows, "deliver") > 0, output
    assert count(rows, "lost", "Failure Count") > 0, output
    assert count(rows, "out of order", "Failure Count") > 0, output
    assert code == 1, output  # locust's exit code when a run has failures
    assert "Traceback" not in output, output


def test_users_stopped_while_registering_leave_no_traceback(chat_server: str, tmp_path: Path) -> None:
    # All 300 users start at once and the run stops after 1 s, while many are
    # still registering: a user stopped between its welcome and its reader's
    # first turn used to end that reader with an AssertionError.
    code, _rows, output = run_locust(chat_server, tmp_path, users=300, run_time="1s")
    # The summary, not the CSV: stopped this early, locust may write its CSV before its last stats.
    assert re.search(r"TCP\s+register\s+[1-9]", output), output
    assert "Traceback" not in output, output
    assert "AssertionError" not in output, output
    assert code == 0, output


@pytest.fixture
def refused_host() -> Iterator[str]:
    """``127.0.0.1:PORT`` where nothing listens: the port is bound, never listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("host", "processes", "message"),
    [
        ("127.0.0.1:http", 0, "bad port in --host '127.0.0.1:http'"),
        ("http://127.0.0.1:8000", 0, "--host must be HOST:PORT or tcp://HOST:PORT"),
        ("refused", 0, "cannot connect to the chat server at 127.0.0.1:"),
        ("refused", 2, "cannot connect to the chat server at 127.0.0.1:"),
    ],
)
def test_unusable_host_fails_once_at_start(
    host: str, processes: int, message: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if host == "refused":
        host = request.getfixturevalue("refused_host")
    """The error came, but then 'Ramping to 5 users', 'All users spawned' and
    empty statistics tables, as if a run had taken place."""
    extra = ("--processes", str(processes)) if processes else ()
    start = time.monotonic()
    code, rows, output = run_locust(host, tmp_path, *extra, run_time="20s")
    assert code == 2, output
    errors = [line for line in output.splitlines() if "/ERROR/" in line]
    assert len(errors) == 1, output
    assert message in errors[0], output
    assert "Traceback" not in output, output
    for sign_of_a_run in ("Ramping", "users spawned", "Aggregated", "percentiles"):
        assert sign_of_a_run not in output, output
    assert time.monotonic() - start < 10, output  # --processes workers are told to quit, not left waiting
    assert count(rows, "connect") == 0, output  # no user tried: the check stopped the run first
