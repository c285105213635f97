"""Test helpers: a line-oriented chat client on gevent sockets, and waiting.

Also a server in a child process, raw and TLS clients on a given socket,
reading to the end, and the metrics (scraped over HTTP or sampled in-process).

In-process tests must use gevent sockets: a blocking stdlib socket would block
the hub, and the server under test (in the same process) would never run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket as stdsocket
import struct
import subprocess as stdsubprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import gevent
import pytest
from gevent import socket, subprocess
from gevent.event import Event

from gevent_chat.client import tls as client_tls
from gevent_chat.server import ChatServer

DEFAULT_WAIT = 5.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bound, then released), for programs
    that cannot bind port 0 and report it (redis-server, locust's master)."""
    with stdsocket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


# -- a server in a child process ---------------------------------------------------


class ServerProcess:
    """``python -m gevent_chat.server`` in a child process, its stderr collected.

    A greenlet drains stderr into ``log`` (so the child never blocks on a full
    pipe) and sets ``ready`` when the ``listening on HOST:PORT`` line appears.
    """

    def __init__(
        self,
        *args: str,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        max_fds: int | None = None,
    ) -> None:
        self.log: list[str] = []
        self.ready = Event()
        self.address: tuple[str, int] | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gevent_chat.server", "--host", host, "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=None if env is None else {**os.environ, **env},
            preexec_fn=None if max_fds is None else lambda: _limit_fds(max_fds),
        )
        self.drainer = gevent.spawn(self._drain)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            m = re.search(r"listening on \[?([^\]\s]+?)\]?:(\d+)(?: \(TLS\))?$", line)
            if m and self.address is None:
                self.address = (m.group(1), int(m.group(2)))
                self.ready.set()
        self.ready.set()  # the child ended: wake anyone waiting for the address

    def wait_listening(self, timeout: float = DEFAULT_WAIT) -> tuple[str, int]:
        """The bound address from the log; AssertionError if it never appears."""
        self.ready.wait(timeout)
        if self.address is None:
            raise AssertionError(f"server did not report its address; log: {self.log!r}")
        return self.address

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        """The child's resident set size (VmRSS, kB) from /proc."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def log_text(self) -> str:
        return "\n".join(self.log)

    def wait(self, timeout: float = DEFAULT_WAIT) -> int:
        """The exit status, after which all of stderr has been collected."""
        code = self.proc.wait(timeout=timeout)
        self.drainer.join(timeout)
        return code

    def kill(self) -> None:
        """Make sure the child is gone (terminate, then kill)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self.drainer.kill(block=True, timeout=1)


def _limit_fds(n: int) -> None:
    """In the child: at most ``n`` descriptors, soft and hard limit alike."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def never_reading_client(addr: tuple[str, int], nick: str) -> socket.socket:
    """A client registered as ``nick`` with a tiny receive buffer, that never reads."""
    sock = socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(addr)
    sock.sendall(nick.encode() + b"\n")
    return sock


def send_burst_read_paced(sender: ChatClient, reader: ChatClient, n: int, nick: str = "alice") -> list[int]:
    """``sender`` (registered as ``nick``) sends ``n`` numbered 4 KB lines at once (12 MB for 3000);
    ``reader`` reads them at about 4 MB/s, slower than the sender writes.
    Returns the numbers ``reader`` got, in order; fails if it was cut."""
    line = "y" * 4000
    burst = "".join(f"{i} {line}\n" for i in range(n)).encode()
    writer = gevent.spawn(sender.send_raw, burst)  # blocks until the server reads it all
    try:
        got: list[int] = []
        buf = b""
        reader.sock.settimeout(5)
        prefix = f"{nick}: ".encode()
        while len(got) < n:
            data = reader.sock.recv(16384)
            assert data, f"the reader was cut after {len(got)} lines"
            *lines, buf = (buf + data).split(b"\n")
            got += [int(raw.split(b" ", 2)[1]) for raw in lines if raw.startswith(prefix)]
            # Pacing, not synchronisation: a client that reads about 4 MB/s
            # without a pause, slower than the sender can write.
            gevent.sleep(0.004)
        writer.join(5)
        return got
    finally:
        writer.kill()


# -- reading raw bytes, pairs of users ---------------------------------------------


def read_raw_line(client: ChatClient, timeout: float = 5.0) -> bytes:
    """The next line exactly as sent (no decoding), without its ``\\n``."""
    deadline = time.monotonic() + timeout
    while b"\n" not in client.buf:
        if not client._fill(deadline):
            raise AssertionError(f"connection closed; partial: {client.buf!r}")
    raw, client.buf = client.buf.split(b"\n", 1)
    return raw


def pair(connect: Callable[..., ChatClient]) -> tuple[ChatClient, ChatClient]:
    """alice and bob registered; alice has seen bob join."""
    alice = connect("alice")
    bob = connect("bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    return alice, bob


# -- clients on a connected socket, reading to the end, metrics --------------------


class TLSChatClient(ChatClient):
    """A ``ChatClient`` over TLS, verifying the server against ``cafile``."""

    def __init__(self, sock: socket.socket, cafile: str, host: str) -> None:
        self.timeout = 5.0
        self.buf = b""
        self.lines: list[str] = []
        self.sock = client_tls.client_context(cafile=cafile).wrap_socket(sock, server_hostname=host)


class SourcedChatClient(ChatClient):
    """A plain ``ChatClient`` on an already connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.timeout = 5.0
        self.buf = b""
        self.lines: list[str] = []
        self.sock = sock


def read_all(client: ChatClient, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    data = client.buf
    client.sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = client.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    raise AssertionError(f"still open after {timeout} s; got {data!r}")


def scrape(addr: tuple[str, int]) -> dict[str, float]:
    """GET /metrics over a gevent socket; returns ``{'name{labels}': value}``."""
    sock = socket.create_connection(addr, timeout=5)
    try:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def sample(server: ChatServer, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def self_signed_cert(folder: Path, name: str, alt_name: str) -> tuple[str, str]:
    """(certfile, keyfile) of a one-day self-signed certificate for ``name``, made
    with the openssl binary; ``alt_name`` is its subjectAltName (``IP:...``, ``DNS:...``)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed (.ci/run installs it)")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    stdsubprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt_name}",
            "-keyout", str(keyfile), "-out", str(certfile),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return str(certfile), str(keyfile)
