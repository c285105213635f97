"""The client against a scripted server: what it shows, what it sends, and when.

A scripted server says exactly what a test needs, including what the real
server never says (escape sequences, a pong), so these tests hold the client
to its own promises whatever the server does.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gevent import socket
from gevent import subprocess as gsubprocess
from gevent.queue import Queue
from gevent.server import StreamServer

from tests.helpers import wait_until

CLIENT = [sys.executable, "-m", "gevent_chat.client"]


class Scripted:
    """A server: prompt, welcome, then ``reply(line)`` for each line.

    A reply of None closes the connection.
    """

    def __init__(self, reply: Callable[[str], bytes | None]) -> None:
        self.reply = reply
        self.received: Queue[str | None] = Queue()  # lines read; None at EOF
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.address[1]

    def _handle(self, sock: socket.socket, _addr: Any) -> None:
        rfile = sock.makefile("rb")
        sock.sendall(b"Enter your nickname: ")
        nick = rfile.readline(4096).strip().decode()
        self.received.put(nick)
        sock.sendall(f"*** Welcome, {nick}! 1 user online\n".encode())
        while line := rfile.readline(4096):
            text = line.rstrip(b"\r\n").decode()
            self.received.put(text)
            answer = self.reply(text)
            if answer is None:
                break
            sock.sendall(answer)
        self.received.put(None)
        rfile.close()

    def lines(self, timeout: float = 5) -> list[str]:
        """Every line received up to the client's EOF."""
        out: list[str] = []
        while (line := self.received.get(timeout=timeout)) is not None:
            out.append(line)
        return out


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(reply: Callable[[str], bytes | None] = lambda _: b"") -> Scripted:
        servers.append(Scripted(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.server.stop(timeout=1)


def run(port: int, args: list[str], data: bytes) -> gsubprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return gsubprocess.run(
        [*CLIENT, "--port", str(port), *args], input=data, capture_output=True, timeout=5, env=env
    )


def test_escape_sequences_from_a_server_are_neutralised(scripted: Callable[..., Scripted]) -> None:
    server = scripted(lambda _: b"\x1b]0;pwned\x07evil: \x1b[2J\x1b[31mhi\x07\xc2\x9b1m\r\n")
    done = run(server.port, ["--nick", "bot"], b"poke\n")
    assert done.returncode == 0, done.stderr
    assert b"evil: hi\n" in done.stdout
    assert not any(c < 0x20 and c != 0x0A for c in done.stdout)
    assert b"\xc2\x9b" not in done.stdout  # the 8-bit CSI, in UTF-8


def test_input_waits_for_registration(scripted: Callable[..., Scripted]) -> None:
    """A line sent before the welcome would be taken as another nickname."""
    server = scripted()
    done = run(server.port, ["--nick", "bot"], b"one\ntwo\n")
    assert done.returncode == 0, done.stderr
    assert server.lines() == ["bot", "one", "two", "/quit"]  # the end of input says goodbye


def test_bare_ping_gets_a_token_and_shows_the_lag(scripted: Callable[..., Scripted]) -> None:
    server = scripted(
        lambda line: f"*** pong {line.split()[1]}\n".encode() if line.startswith("/ping") else b""
    )
    done = run(server.port, ["--nick", "bot"], b"/ping\n")
    assert done.returncode == 0, done.stderr
    assert server.lines() == ["bot", "/ping lag1", "/quit"]
    assert b"*** pong lag1 (lag " in done.stdout


def test_quit_sends_and_stops_sending(scripted: Callable[..., Scripted]) -> None:
    server = scripted(lambda line: b"*** bye\n" if line.startswith("/quit") else b"")
    done = run(server.port, ["--nick", "bot"], b"hi\n/quit gone fishing\nnever sent\n")
    assert done.returncode == 0, done.stderr
    assert server.lines() == ["bot", "hi", "/quit gone fishing"]
    assert b"*** bye" in done.stdout


def test_sigint_leaves_quietly_with_status_130(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    proc = gsubprocess.Popen(
        [*CLIENT, "--port", str(server.port), "--nick", "bot"],
        stdin=gsubprocess.PIPE,
        stdout=gsubprocess.PIPE,
        stderr=gsubprocess.PIPE,
    )
    try:
        assert server.received.get(timeout=5) == "bot"
        wait_until(lambda: b"Welcome" in proc.stdout.peek(), what="the welcome on stdout")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5)
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 130
    assert b"Traceback" not in err
    assert server.received.get(timeout=5) is None  # the connection was closed


def test_reconnect_rejoins_the_room_it_was_in(scripted: Callable[..., Scripted]) -> None:
    def reply(line: str) -> bytes | None:
        if line == "/join #den":
            return b"*** you joined #den\n"
        return None  # "drop": close the connection

    server = scripted(reply)
    proc = gsubprocess.Popen(
        [*CLIENT, "--port", str(server.port), "--nick", "bot", "--reconnect"],
        stdin=gsubprocess.PIPE,
        stdout=gsubprocess.DEVNULL,
    )
    try:
        proc.stdin.write(b"/join #den\ndrop\n")
        proc.stdin.flush()
        got = [server.received.get(timeout=5) for _ in range(6)]
    finally:
        proc.kill()
        proc.wait()
    assert got == ["bot", "/join #den", "drop", None, "bot", "/join den"]


def test_reconnect_backs_off_from_a_server_that_accepts_and_drops(scripted: Callable[..., Scripted]) -> None:
    """The backoff restarted at its first step on every connection that was
    accepted, so a server that accepts and drops at once (full, or crashing
    on start) was retried every half second forever by every client."""
    accepted: Queue[None] = Queue()

    def drop(sock: socket.socket, _addr: Any) -> None:
        accepted.put(None)
        sock.close()

    dropper = StreamServer(("127.0.0.1", 0), drop)
    dropper.start()
    proc = gsubprocess.Popen(
        [*CLIENT, "--port", str(dropper.address[1]), "--nick", "bot", "--reconnect"],
        stdin=gsubprocess.PIPE,  # left open: the user has not left
        stdout=gsubprocess.PIPE,
        stderr=gsubprocess.DEVNULL,
    )
    try:
        delays: list[float] = []
        while len(delays) < 3:
            line = proc.stdout.readline().decode()
            assert line, "client ended"
            m = re.search(r"reconnecting in ([\d.]+) s", line)
            if m:
                delays.append(float(m.group(1)))
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        dropper.stop(timeout=1)
    # Equal jitter: try n waits between half and all of 0.5 * 2**n seconds.
    assert delays[2] >= 1.0, delays
