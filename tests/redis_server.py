"""A real ``redis-server`` for tests: on a free port, paused, resumed, restarted, killed.

Not a conftest: test modules that need Redis build their own fixture with
``running_redis()``.  Without the ``redis-server`` binary the tests are
skipped, unless ``GEVENT_CHAT_REQUIRE_ALL=1`` (then they fail).  Persistence is
off (``--save '' --appendonly no``), so a restart loses everything, which is
what the epoch tests want.  Every process started here is killed by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent
import pytest
from gevent import socket, subprocess

from tests.helpers import free_port

#: Seconds a fresh redis-server has to answer PING.
START_DEADLINE = 10.0


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; ``url`` stays the same across ``restart()``."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> None:
        """Start on ``port`` (a free one when None, retried if someone takes it first)."""
        for _ in range(5):
            self.port = port or free_port()
            if self._spawn():
                return
        raise RuntimeError(f"redis-server did not start; see {self.workdir / 'redis.log'}")

    def _spawn(self) -> bool:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited: the port was taken meanwhile
                return False
            if _pings(self.port):
                return True
            gevent.sleep(0.02)
        self.kill()
        return False

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Kill (SIGKILL: no goodbye, all data lost) and start again on the same port."""
        self.kill()
        self.start(self.port)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)  # works on a stopped process too
        proc.wait(timeout=5)


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started ``RedisServer``, killed on exit; skips (or fails) when there is no redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip(reason)
    server = RedisServer(binary, workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
