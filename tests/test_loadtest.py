"""Smoke runs of the locust load test: it sees deliveries, and it sees losses.

Locust runs headless as a subprocess for a few seconds, once against the real
server (a subprocess) and once against a faulty server made here that drops
and reorders relayed lines; its ``--csv`` statistics tell what it saw.
``gevent.subprocess`` lets the in-process faulty server run while we wait.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from gevent import socket, subprocess
from gevent.lock import Semaphore
from gevent.pool import Pool
from gevent.server import StreamServer

from gevent_chat.core import protocol

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
                line = protocol.chat_line(nick, raw.rstrip(b"\r\n").decode())
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


def run_locust(host: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, dict[str, str]], str]:
    """Run the locustfile headless for 3 s; returns (exit code, CSV rows by name, output)."""
    prefix = tmp_path / "run"
    result = subprocess.run(
        [
            str(LOCUST),
            "-f",
            "loadtest/locustfile.py",
            "--headless",
            "--only-summary",
            "-u",
            "5",
            "-r",
            "5",
            "-t",
            "3s",
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
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = result.stdout.decode() + result.stderr.decode()
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    return result.returncode, rows, output


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
