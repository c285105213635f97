"""CPU and memory over a measurement window, and latency quantiles.

Every row reports the generator's and the rest of the machine's CPU next to
the server's, so a reader can tell a server limit from a generator limit.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence

from .server import ServerProcess


class Meter:
    """CPU of the server and of this process, and server RSS, over a window."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.t0 = time.monotonic()
        self.srv0 = server.cpu_seconds()
        self.gen0 = _own_cpu()
        self.busy0 = machine_busy()

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        srv = self.server.cpu_seconds() - self.srv0
        gen = _own_cpu() - self.gen0
        other = machine_busy() - self.busy0 - srv - gen
        return {
            "seconds": round(elapsed, 3),
            "server_cpu_pct": round(100 * srv / elapsed, 1),
            "gen_cpu_pct": round(100 * gen / elapsed, 1),
            # Everything else the machine ran meanwhile (other processes, kernel): noise.
            "other_cpu_pct": round(max(0.0, 100 * other / elapsed), 1),
            "server_rss_mb": round(self.server.rss_bytes() / 2**20, 1),
        }


def _own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def machine_busy() -> float:
    """CPU seconds all CPUs spent not idle, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    busy = sum(ticks[:8]) - idle  # user..steal; guest time is already in user
    return busy / os.sysconf("SC_CLK_TCK")


def quantiles_ms(samples: Sequence[int]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(samples)

    def pick(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] / 1e6, 3)

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(s[-1] / 1e6, 3)}
