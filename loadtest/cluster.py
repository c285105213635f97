"""The cost of the Redis hop: one server process vs two nodes sharing Redis, at equal load.

``python -m loadtest.cluster [--clients 20] [--rate 20] [--duration 10] [--mode both|single|cluster]
[--repeat N] [--profile DIR] [--linger-ms MS] [--nodes 2]``

``single`` starts one ``python -m gevent_chat.server``; ``cluster`` starts a
private ``redis-server`` (Unix socket, no persistence) and two servers
(``--nodes``) with ``--redis-url``, and the clients alternate between them,
so about half of every line's recipients are on the other node.  With
``--nodes 1`` every batch is stored and published with nobody to receive
it: what publishing alone costs.  All clients join one room
and each says ``--rate`` lines a second (open loop: a line carries its
*scheduled* send time, so a stall shows up as latency).  Every client reads
everything and parses every chat line: deliveries are counted per receiver
(lost = what the others sent minus what arrived) and timed with
``time.monotonic_ns`` (one clock for the whole machine).

Reported per mode: deliveries/s, latency p50/p99/max, server CPU (all server
processes, and Redis separately) and the CPU each delivered line cost
(``cpu_us_per_delivery``: server processes, then server + Redis).  Nothing is
pinned: the generator, the servers and Redis share the machine's cores, so
read ``gen_cpu_pct`` before trusting a latency.

Per line, which is what the hop costs: ``py_us_per_line_per_node`` (server
CPU over lines said, over servers) and ``redis_us_per_line``.  With both
modes, the last row compares them run by run: ``hop_us_per_line_per_node``
is the cluster's server CPU minus the single process's, per line, per node;
``--repeat N`` runs the pair N times and prints medians.
``wakeups_per_line_per_node`` and ``redis_wakeups_per_line`` (voluntary
context switches of the main thread: how often the process slept and was
woken) say how many loop iterations a line costs.  Every figure moves with
whatever else the machine runs: a process held up by other work wakes less
often, for more at once, and then costs less per line (a run whose p99 is
far above its p50 was such a run).  ``--profile DIR``
samples the first node with py-spy (``DIR/node.txt``, collapsed stacks) and
prints where Redis spent its time (``INFO commandstats``, per line).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
from gevent import socket, subprocess
from gevent.event import Event

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    return sum(_user_sys(pid))


def _user_sys(pid: int) -> tuple[float, float]:
    """CPU seconds ``pid`` spent in user space and in the kernel."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def _wakeups(pid: int) -> int:
    """Times ``pid``'s main thread went to sleep and was woken: its loop's wake-ups, about."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def _commandstats(sock_path: str) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` of the Redis at ``sock_path``: command -> (calls, usec)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    try:
        conn.sendall(b"INFO commandstats\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\n") and not (data.count(b"\r\n") >= 2 and _complete(data)):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
    stats = {}
    for line in data.decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line[len("cmdstat_") :].partition(":")
            fields = dict(kv.split("=") for kv in rest.split(","))
            stats[name] = (int(fields["calls"]), int(fields["usec"]))
    return stats


def _complete(data: bytes) -> bool:
    """Whether ``data`` holds one whole RESP bulk string."""
    head, _, body = data.partition(b"\r\n")
    return head.startswith(b"$") and len(body) >= int(head[1:]) + 2


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Proc:
    """A child process, its stderr drained; ``address`` from its ``listening on`` line."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.port: int | None = None
        self.ready = Event()
        gevent.spawn(self._drain)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if "listening on " in line and self.port is None:
                self.port = int(line.rsplit(":", 1)[1])
                self.ready.set()
        self.ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _server(*extra: str) -> Proc:
    args = [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0"]
    proc = Proc([*args, "--rate-limit", "0", "--history", "0", *extra])
    proc.ready.wait(15)
    if proc.port is None:
        raise SystemExit("a server did not start")
    return proc


class Client:
    def __init__(self, index: int, port: int, n: int) -> None:
        self.nick = f"c{index}"
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sent = 0
        self.got = [0] * n  # lines received from each sender
        self.latencies: list[int] = []
        self.joins = 0  # "*** cN joined #lobby" notices received
        self._rest = b""  # what came after the welcome line

    def register(self) -> None:
        self.sock.sendall(self.nick.encode() + b"\n")
        buf = b""
        while b"\n" not in buf.partition(b"Welcome")[2]:  # the whole welcome line
            data = self.sock.recv(4096)
            if not data:
                raise SystemExit(f"{self.nick} was refused")
            buf += data
        self._rest = buf.split(b"Welcome", 1)[1].split(b"\n", 1)[1]
        self.sock.settimeout(None)

    def read(self) -> None:
        buf, data = b"", self._rest
        while True:
            if not data:
                data = self.sock.recv(65536)
                if not data:
                    return
            now = time.monotonic_ns()
            *lines, buf = (buf + data).split(b"\n")
            data = b""
            for line in lines:
                if line.startswith(b"*** c") and line.endswith(b" joined #lobby"):
                    self.joins += 1
                elif line.startswith(b"c") and b": " in line:
                    head, _, body = line.partition(b": ")
                    seq_ns = body.split(b" ", 2)
                    if len(seq_ns) >= 2 and head[1:].isdigit():
                        self.got[int(head[1:])] += 1
                        self.latencies.append(now - int(seq_ns[1]))

    def talk(self, rate: float, phase: float, start_ns: int, until_ns: int) -> None:
        period = int(1e9 / rate)
        due = start_ns + int(phase * period)
        pad = b"x" * 24
        while due < until_ns:
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                gevent.sleep(delay)
            self.sock.sendall(b"%d %d %s\n" % (self.sent, due, pad))
            self.sent += 1
            due += period


def _quantile(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return round(sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6, 2)


def run(
    mode: str,
    clients: int,
    rate: float,
    duration: float,
    profile: Path | None = None,
    linger_ms: float = 0.0,
    nodes: int = 2,
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="gc-bench-"))
    redis_proc: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    sock_path = ""
    servers: list[Proc] = []
    try:
        if mode == "cluster":
            binary = shutil.which("redis-server")
            if binary is None:
                raise SystemExit("redis-server is not installed")
            sock_path = str(tmp / "redis.sock")
            redis_proc = subprocess.Popen(
                [binary, "--port", "0", "--unixsocket", sock_path, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                cwd=tmp,
            )
            deadline = time.monotonic() + 10
            while not os.path.exists(sock_path) and time.monotonic() < deadline:
                gevent.sleep(0.02)
            url = f"unix://{sock_path}"
            linger = ("--redis-linger-ms", str(linger_ms)) if linger_ms else ()
            servers = [_server("--redis-url", url, "--cluster", "bench", *linger) for _ in range(nodes)]
        else:
            servers = [_server()]
        ports = [s.port for s in servers]
        crowd = [Client(i, ports[i % len(ports)] or 0, clients) for i in range(clients)]
        gevent.joinall([gevent.spawn(c.register) for c in crowd], raise_error=True)
        readers = [gevent.spawn(c.read) for c in crowd]
        # Every join is announced to everyone already there (across nodes, a
        # pair registering at once may each see the other's): wait for them.
        expected, deadline = clients * (clients - 1) // 2, time.monotonic() + 30
        while sum(c.joins for c in crowd) < expected and time.monotonic() < deadline:
            gevent.sleep(0.02)
        pids = [s.proc.pid for s in servers]
        stats0 = _commandstats(sock_path) if redis_proc else {}
        if profile is not None and mode == "cluster":
            profile.mkdir(parents=True, exist_ok=True)
            spy_args = ["record", "--pid", str(pids[0]), "--format", "raw", "--nonblocking", "--rate", "250"]
            spy_args += ["--duration", str(int(duration + 1)), "--output", str(profile / "node.txt")]
            spy = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), *spy_args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu0 = sum(_cpu(p) for p in pids)
        sys0 = sum(_user_sys(p)[1] for p in pids)
        redis0 = _cpu(redis_proc.pid) if redis_proc else 0.0
        wakes0 = sum(_wakeups(p) for p in pids)
        redis_wakes0 = _wakeups(redis_proc.pid) if redis_proc else 0
        gen0, wall0 = _own_cpu(), time.monotonic()
        start = time.monotonic_ns() + 50_000_000
        until = start + int(duration * 1e9)
        talkers = [gevent.spawn(c.talk, rate, i / clients, start, until) for i, c in enumerate(crowd)]
        gevent.joinall(talkers, raise_error=True)
        expected = {c.nick: sum(o.sent for o in crowd if o is not c) for c in crowd}
        drain = time.monotonic() + 5
        while time.monotonic() < drain and any(sum(c.got) < expected[c.nick] for c in crowd):
            gevent.sleep(0.05)
        wall = time.monotonic() - wall0
        cpu = sum(_cpu(p) for p in pids) - cpu0
        kernel = sum(_user_sys(p)[1] for p in pids) - sys0
        redis_cpu = (_cpu(redis_proc.pid) - redis0) if redis_proc else 0.0
        wakes = sum(_wakeups(p) for p in pids) - wakes0
        redis_wakes = (_wakeups(redis_proc.pid) - redis_wakes0) if redis_proc else 0
        gen = _own_cpu() - gen0
        stats1 = _commandstats(sock_path) if redis_proc else {}
        if spy is not None:
            spy.wait(timeout=30)
        delivered = sum(sum(c.got) for c in crowd)
        lost = sum(expected[c.nick] for c in crowd) - delivered
        lats = sorted(lat for c in crowd for lat in c.latencies)
        for r in readers:
            r.kill()
        for c in crowd:
            c.sock.close()
        said = sum(c.sent for c in crowd)
        top = sorted(
            (
                (name, usec - stats0.get(name, (0, 0))[1], calls - stats0.get(name, (0, 0))[0])
                for name, (calls, usec) in stats1.items()
            ),
            key=lambda t: -t[1],
        )
        return {
            "mode": mode,
            "servers": len(servers),
            "clients": clients,
            "lines_per_s": round(sum(c.sent for c in crowd) / duration),
            "deliveries_per_s": round(delivered / duration),
            "lost": lost,
            "p50_ms": _quantile(lats, 0.5),
            "p99_ms": _quantile(lats, 0.99),
            "max_ms": _quantile(lats, 1.0),
            "server_cpu_pct": round(100 * cpu / wall, 1),
            "server_sys_pct": round(100 * kernel / wall, 1),
            "redis_cpu_pct": round(100 * redis_cpu / wall, 1),
            "gen_cpu_pct": round(100 * gen / wall, 1),
            "cpu_us_per_delivery": round(1e6 * cpu / max(1, delivered), 2),
            "cpu_us_per_delivery_with_redis": round(1e6 * (cpu + redis_cpu) / max(1, delivered), 2),
            "py_us_per_line_per_node": round(1e6 * cpu / max(1, said) / len(servers), 1),
            "redis_us_per_line": round(1e6 * redis_cpu / max(1, said), 1),
            "wakeups_per_line_per_node": round(wakes / max(1, said) / len(servers), 3),
            "redis_wakeups_per_line": round(redis_wakes / max(1, said), 3),
            "redis_commands": {
                name: f"{calls / max(1, said):.2f}/line {usec / max(1, said):.1f}us/line"
                for name, usec, calls in top[:4]
                if calls
            },
        }
    finally:
        for s in servers:
            s.stop()
        if redis_proc is not None and redis_proc.poll() is None:
            redis_proc.kill()
            redis_proc.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rate", type=float, default=20.0, help="lines a second per client")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--mode", choices=("both", "single", "cluster"), default="both")
    p.add_argument("--json", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="run the modes this many times, then print medians")
    p.add_argument("--profile", type=Path, help="py-spy the first node into DIR/node.txt")
    p.add_argument("--linger-ms", type=float, default=0.0, help="the nodes' --redis-linger-ms")
    p.add_argument("--nodes", type=int, default=2, help="servers sharing Redis (cluster mode)")
    a = p.parse_args(argv)
    if a.nodes < 1:
        p.error("--nodes must be at least 1")
    modes = ("single", "cluster") if a.mode == "both" else (a.mode,)
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    hops: list[float] = []
    for _ in range(a.repeat):
        for mode in modes:
            row = run(mode, a.clients, a.rate, a.duration, a.profile, a.linger_ms, a.nodes)
            rows[mode].append(row)
            print(json.dumps(row) if a.json else "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if a.mode == "both":
            single, cluster = rows["single"][-1], rows["cluster"][-1]
            extra = cluster["server_cpu_pct"] - single["server_cpu_pct"]
            hops.append(round(1e4 * extra / max(1, cluster["lines_per_s"]) / cluster["servers"], 1))
    if a.repeat > 1:
        for mode in modes:
            med = {
                k: statistics.median(r[k] for r in rows[mode])
                for k in rows[mode][0]
                if isinstance(rows[mode][0][k], (int, float)) and all(r[k] is not None for r in rows[mode])
            }
            print(f"median {mode}: " + "  ".join(f"{k}={v}" for k, v in med.items()), flush=True)
    if hops:
        print(f"hop_us_per_line_per_node={statistics.median(hops)} (runs: {hops})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
