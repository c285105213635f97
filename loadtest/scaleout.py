"""Scale-out under heavy load: one server process vs ``--workers N``, chatbench on the one port.

``python -m loadtest.scaleout [--workers 2] [--case heavy|rooms|both] [--repeat 3] [--duration 8]
[--chatbench PATH]``

Each run starts the server (``python -m gevent_chat.server``, or the same
with ``--workers N``: N processes on one port with SO_REUSEPORT and a
private ``redis-server``), drives it with chatbench (the Go load generator
of ``../shared/chatbench``; build it with ``go build -o /tmp/chatbench .``
there) and stops it.  Two cases:

* ``heavy``: 100 clients in one room, every one sending as fast as its
  window of 8 lines in flight allows (``-rate 0 -window 8``): the most
  fan-out a server can deliver.
* ``rooms``: ``--rooms`` rooms of ``--room-size`` clients each, one
  chatbench per room at once (nicks ``r<K>u<I>``, ``/join #r<K>``), the
  same unpaced load: work that spreads over workers, as rooms do.

Reported per run: lines delivered per second (summed over the rooms),
delivery ratio (1 means nothing lost), latency p99 (worst room), and the
CPU of the whole server side (supervisor, workers and Redis, from /proc)
and of the generators.  With ``--repeat`` the modes alternate run by run,
then the medians are printed.  On a machine with fewer cores than
workers plus generator, the workers compete with the load for CPU: read
``gen_cpu_pct`` and ``server_cpu_pct`` before a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from .processes import LoggedProcess

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and every descendant of it."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        except OSError:
            pass
    return total


def _start(workers: int) -> tuple[LoggedProcess, int]:
    argv = [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--rate-limit", "0", "--history", "0", "--max-clients", "5000"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    proc = LoggedProcess(argv, "gc-scaleout-")
    try:
        # With workers, the supervisor's line says all of them listen: a load started
        # after the first worker's line would land mostly on that one.
        where = proc.listening_on(30, marker=b"workers listening on " if workers > 1 else b"listening on ")
        port = re.search(rb":(\d+)", where or b"")
        if port is None:
            raise SystemExit("the server did not start")
        return proc, int(port.group(1))
    except BaseException:
        proc.stop()
        raise


def _chatbench(
    binary: str, port: int, duration: float, clients: int, nick_line: str
) -> subprocess.Popen[bytes]:
    argv = [binary, "-addr", f"127.0.0.1:{port}", "-wait-prompt", "-mode", "load", "-clients", str(clients)]
    argv += [
        "-rate",
        "0",
        "-window",
        "8",
        "-duration",
        f"{duration}s",
        "-warmup",
        "2s",
        "-nick-line",
        nick_line,
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def run(binary: str, workers: int, case: str, duration: float, rooms: int, room_size: int) -> dict[str, Any]:
    proc, port = _start(workers)
    benches: list[subprocess.Popen[bytes]] = []
    try:
        if case == "heavy":
            benches = [_chatbench(binary, port, duration, 100, "{nick}")]
        else:
            benches = [
                _chatbench(binary, port, duration, room_size, f"r{k}{{nick}}\\n/join #r{k}")
                for k in range(rooms)
            ]
        time.sleep(2.5)  # registration and warm-up: measure CPU over the window only
        pids = _tree(proc.pid)
        cpu0, gen0, wall0 = _cpu(pids), _cpu([b.pid for b in benches]), time.monotonic()
        time.sleep(duration)
        cpu, gen, wall = _cpu(pids) - cpu0, _cpu([b.pid for b in benches]) - gen0, time.monotonic() - wall0
        results = []
        for bench in benches:
            out, _ = bench.communicate(timeout=duration + 60)
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for bench in benches:
            if bench.poll() is None:
                bench.kill()
                bench.wait()
        proc.stop()
    return {
        "mode": "one process" if workers == 1 else f"--workers {workers}",
        "case": case,
        "delivered_per_s": round(sum(r.get("delivered_per_s", 0) for r in results)),
        "delivery_ratio": round(min(r.get("delivery_ratio", 0) for r in results), 4),
        "lost": sum(r.get("lost", 0) for r in results),
        "duplicates": sum(r.get("duplicates", 0) for r in results),
        "lat_p99_ms": max(r.get("lat_p99_ms", 0) for r in results),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "gen_cpu_pct": round(100 * gen / wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.scaleout", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--case", choices=("heavy", "rooms", "both"), default="both")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--room-size", type=int, default=10)
    p.add_argument("--chatbench", default=shutil.which("chatbench") or "/tmp/chatbench")
    a = p.parse_args(argv)
    if not os.access(a.chatbench, os.X_OK):
        raise SystemExit(
            f"no chatbench at {a.chatbench}: cd ../shared/chatbench && go build -o /tmp/chatbench ."
        )
    cases = ("heavy", "rooms") if a.case == "both" else (a.case,)
    for case in cases:
        rows: dict[int, list[dict[str, Any]]] = {1: [], a.workers: []}
        for _ in range(a.repeat):
            for workers in rows:
                row = run(a.chatbench, workers, case, a.duration, a.rooms, a.room_size)
                rows[workers].append(row)
                print(json.dumps(row), flush=True)
        for runs in rows.values():
            med = {
                k: statistics.median(r[k] for r in runs)
                for k in runs[0]
                if isinstance(runs[0][k], (int, float))
            }
            print(
                f"median {runs[0]['mode']} {case}: " + "  ".join(f"{k}={v}" for k, v in med.items()),
                flush=True,
            )
        ratio = statistics.median(r["delivered_per_s"] for r in rows[a.workers]) / max(
            1, statistics.median(r["delivered_per_s"] for r in rows[1])
        )
        print(f"{case}: --workers {a.workers} delivers {ratio:.2f}x one process (medians)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
