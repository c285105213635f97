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
from typing import Any
from urllib.parse import quote

import gevent
import pytest
import redis
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
#: A Cluster's node timeout: a master silent this long is failed over to its replica.
CLUSTER_NODE_TIMEOUT_MS = 1500


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
        self,
        binary: str,
        workdir: Path,
        tls: tuple[str, str] | None = None,
        tls_auth_clients: bool = False,
        cluster: bool = False,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.cluster = cluster
        self.bus_port = 0  # the cluster bus's port, kept across restarts
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
        if self.cluster:
            self.bus_port = self.bus_port or free_port()
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += [
                "--cluster-port",
                str(self.bus_port),
                "--cluster-node-timeout",
                str(CLUSTER_NODE_TIMEOUT_MS),
            ]
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

    def plain(self) -> Any:
        """A blocking client: nothing else runs while it waits."""
        return redis.Redis(port=self.port) if self.tls is None else redis.Redis.from_url(self.url)

    def client_ids(self, name: str) -> set[tuple[int, int]]:
        """(port, id) of every connection named ``name`` (CLIENT SETNAME)."""
        node = redis.Redis(port=self.port)
        try:
            return {(self.port, int(c["id"])) for c in node.client_list() if c["name"] == name}
        finally:
            node.close()

    def kill_clients(self, ids: set[tuple[int, int]]) -> None:
        """CLIENT KILL each of ``ids`` (from ``client_ids``)."""
        for port, client_id in ids:
            node = redis.Redis(port=port)
            try:
                node.client_kill_filter(_id=client_id)
            finally:
                node.close()

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


class RedisCluster:
    """Three masters with one replica each, on loopback, made by ``redis-cli --cluster create``.

    Offers what the tests use of ``RedisServer`` (``url``, ``pause``,
    ``resume``, ``restart``), plus ``flush`` (between tests that share it),
    ``plain()`` (a blocking client) and ``fail_master`` (SIGKILL the master of
    a key and wait for its replica to take over).
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        self.servers = []
        for i in range(6):
            (workdir / f"n{i}").mkdir(parents=True, exist_ok=True)
            self.servers.append(RedisServer(binary, workdir / f"n{i}", cluster=True))
        self.cli = shutil.which("redis-cli") or "redis-cli"

    @property
    def url(self) -> str:
        """Any node will do: the chat server finds the others."""
        return self.servers[0].url

    @property
    def port(self) -> int:
        return self.servers[0].port

    def start(self) -> None:
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
        created = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout!r} {created.stderr!r}")
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok and every master has a synced replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready():
                return
            gevent.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become ready")

    def _ready(self) -> bool:
        try:
            masters = 0
            for server in self.servers:
                if server.proc is None:
                    continue
                node = redis.Redis(port=server.port, socket_timeout=2)
                try:
                    info = node.cluster("info")
                    if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                        return False
                    repl = node.info("replication")
                    if repl["role"] == "master" and node.cluster("countkeysinslot", 0) is not None:
                        masters += 1
                    elif repl["role"] == "slave" and repl.get("master_link_status") != "up":
                        return False
                finally:
                    node.close()
            return masters == 3
        except (redis.RedisError, OSError):
            return False

    def plain(self) -> Any:
        """A blocking cluster client: nothing else runs while it waits."""
        return redis.RedisCluster(host="127.0.0.1", port=self.live()[0].port)

    def client_ids(self, name: str) -> set[tuple[int, int]]:
        """(port, id) of every connection named ``name``, on every node."""
        return {found for server in self.live() for found in server.client_ids(name)}

    def kill_clients(self, ids: set[tuple[int, int]]) -> None:
        self.servers[0].kill_clients(ids)

    def live(self) -> list[RedisServer]:
        return [server for server in self.servers if server.proc is not None]

    def flush(self) -> None:
        for server in self.live():
            node = redis.Redis(port=server.port)
            try:
                if node.info("replication")["role"] == "master":
                    node.flushall()
                    node.script_flush()
            finally:
                node.close()

    def pause(self) -> None:
        for server in self.live():
            server.pause()

    def resume(self) -> None:
        for server in self.live():
            server.resume()

    def restart(self) -> None:
        """Every node killed and started again: all data lost, the cluster's layout kept."""
        for server in self.servers:
            server.kill()
        for server in self.servers:
            server.start(server.port)
        self.wait_ready()

    def master_of(self, key: str) -> RedisServer:
        node = redis.Redis(port=self.live()[0].port)
        try:
            slot = node.cluster("keyslot", key)
            for start, end, master, *_ in node.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return next(s for s in self.servers if s.port == int(master[1]))
        finally:
            node.close()
        raise LookupError(key)

    def fail_master(self, key: str) -> RedisServer:
        """SIGKILL the master holding ``key``; return once its replica serves the slot."""
        master = self.master_of(key)
        master.kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.master_of(key) is not master and self._slots_ok():
                    return master
            except (redis.RedisError, OSError, LookupError):
                pass
            gevent.sleep(0.1)
        raise RuntimeError("no replica took over")

    def _slots_ok(self) -> bool:
        node = redis.Redis(port=self.live()[0].port)
        try:
            info = node.cluster("info")
            return info.get("cluster_state") == "ok" and int(info.get("cluster_slots_ok", 0)) == 16384
        finally:
            node.close()

    def revive(self, server: RedisServer) -> None:
        """Start a killed node again: it comes back as a replica; wait for the cluster to be whole."""
        server.start(server.port)
        self.wait_ready()

    def kill(self) -> None:
        for server in self.servers:
            server.kill()


@contextmanager
def running_redis_cluster(workdir: Path) -> Iterator[RedisCluster]:
    """A started ``RedisCluster``, killed on exit; skips (or fails) without redis-server 7 and redis-cli."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        reason = "redis-server and redis-cli are not installed (Debian: apt-get install redis-server)"
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip(reason)
    cluster = RedisCluster(binary, workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()
