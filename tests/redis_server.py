"""A real ``redis-server`` for tests: on a free port, paused, resumed, restarted, killed.

Not a conftest: test modules that need Redis build their own fixture with
``running_redis()``; ``running_redis(workdir, tls=cert)`` serves TLS only
(``rediss://``; the certificate is also the CA trusted for client
certificates, asked for with ``tls_auth_clients=True``).  Without the
``redis-server`` binary the tests are skipped, unless
``GEVENT_CHAT_REQUIRE_ALL=1`` (then they fail).  Persistence is off
(``--save '' --appendonly no``), so a restart loses everything, which is
what the epoch tests want.  Every process started here is killed by PID.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import gevent
import pytest
from gevent import socket, ssl, subprocess

from tests.helpers import free_port

#: libc, loaded before any fork: the child only calls into it.
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGKILL when this process ends, even by ``os._exit`` (as
    pytest-timeout's thread method ends a stuck run), which skips every fixture."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


#: Seconds a fresh redis-server has to answer PING.
START_DEADLINE = 10.0


def _pings(port: int, tls: tuple[str, str] | None = None) -> bool:
    """Whether PING on ``port`` answers PONG (over TLS with ``tls``, on ``gevent.ssl``)."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except OSError:
        return False
    try:
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # a readiness probe: the certificate may name another host
            ctx.load_verify_locations(tls[0])
            ctx.load_cert_chain(*tls)  # in case it asks for a client certificate
            conn = ctx.wrap_socket(conn, server_hostname="127.0.0.1")
        conn.sendall(b"PING\r\n")
        return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        conn.close()


class RedisServer:
    """One redis-server process; ``url`` stays the same across ``restart()``.

    With ``tls=(certfile, keyfile)`` it listens for TLS only, and ``url`` is a
    ``rediss://`` one naming ``certfile`` as its CA.
    """

    def __init__(
        self, binary: str, workdir: Path, tls: tuple[str, str] | None = None, tls_auth_clients: bool = False
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={quote(self.tls[0])}"

    def start(self, port: int | None = None) -> None:
        """Start on ``port`` (a free one when None, retried if someone takes it first)."""
        for _ in range(5):
            self.port = port or free_port()
            if self._spawn():
                return
        raise RuntimeError(f"redis-server did not start; see {self.workdir / 'redis.log'}")

    def _spawn(self) -> bool:
        args = [self.binary, "--bind", "127.0.0.1"]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            certfile, keyfile = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", certfile]
            args += ["--tls-key-file", keyfile, "--tls-ca-cert-file", certfile]
            args += ["--tls-auth-clients", "yes" if self.tls_auth_clients else "no"]
        args += ["--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited: the port was taken meanwhile
                return False
            if _pings(self.port, self.tls):
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
def running_redis(
    workdir: Path, tls: tuple[str, str] | None = None, tls_auth_clients: bool = False
) -> Iterator[RedisServer]:
    """A started ``RedisServer``, killed on exit; skips (or fails) when there is no redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip(reason)
    server = RedisServer(binary, workdir, tls, tls_auth_clients)
    server.start()
    try:
        yield server
    finally:
        server.kill()
