"""Test helpers: a line-oriented chat client on gevent sockets, and waiting.

In-process tests must use gevent sockets: a blocking stdlib socket would block
the hub, and the server under test (in the same process) would never run.
"""

from __future__ import annotations

import re
import socket as stdsocket
import struct
import time
from collections.abc import Callable

import gevent
from gevent import socket

DEFAULT_WAIT = 5.0


def wait_until(predicate: Callable[[], bool], timeout: float = DEFAULT_WAIT, what: str = "condition") -> None:
    """Poll ``predicate`` (yielding to other greenlets) until it is true or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.005)


class ChatClient:
    """A raw TCP client speaking the line protocol, as ``nc`` would."""

    def __init__(self, addr: tuple[str, int], timeout: float = DEFAULT_WAIT) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.lines: list[str] = []  # every complete line received, in order

    # -- sending -------------------------------------------------------------
    def send(self, line: str | bytes, end: bytes = b"\n") -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + end)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving -----------------------------------------------------------
    def _fill(self, deadline: float) -> bool:
        """Receive once; False at EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; received so far: {self.lines[-5:]!r} + {self.buf[:200]!r}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError as exc:
            raise AssertionError(
                f"timed out; received so far: {self.lines[-5:]!r} + {self.buf[:200]!r}"
            ) from exc
        if not data:
            return False
        self.buf += data
        return True

    def read_line(self, timeout: float | None = None) -> str:
        """The next complete line (without its newline); AssertionError at EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(f"connection closed; partial: {self.buf!r}")
        raw, self.buf = self.buf.split(b"\n", 1)
        line = raw.decode("utf-8", "replace")
        self.lines.append(line)
        return line

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """Read lines until one matches ``pattern`` (re.search); return the match."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            line = self.read_line(max(0.001, deadline - time.monotonic()))
            m = re.search(pattern, line)
            if m:
                return m

    def expect_prompt(self, timeout: float | None = None) -> None:
        """Read up to and including the (newline-less) nickname prompt."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"nickname: " not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(f"closed before prompt: {self.buf!r}")
        self.buf = self.buf.split(b"nickname: ", 1)[1]

    def read_until_closed(self, timeout: float | None = None) -> list[str]:
        """Read everything until the server closes; returns the lines read."""
        deadline = time.monotonic() + (timeout or self.timeout)
        start = len(self.lines)
        while self._fill(deadline):
            while b"\n" in self.buf:
                self.read_line()
        return self.lines[start:]

    def register(self, nick: str) -> str:
        """Answer the prompt with ``nick``; returns the welcome line."""
        self.expect_prompt()
        self.send(nick)
        return self.expect(r"^\*\*\* Welcome").string

    # -- ending --------------------------------------------------------------
    def close(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        self.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
