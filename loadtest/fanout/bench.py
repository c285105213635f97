"""One scenario run: its clients, their readers, and the loss and duplicate tally.

Kept apart from the clients so that a scenario reads as connect, send, drain
and tally, and from the meters so that CPU accounting has one home.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Sequence
from typing import Any

import gevent
from gevent.pool import Pool

from .clients import Client
from .server import ServerProcess

DRAIN_SECONDS = 10.0
REGISTER_CONCURRENCY = 200


class Bench:
    """Clients, readers and measurements of one scenario run against one server."""

    def __init__(self, server: ServerProcess, n: int, kernel_stamps: bool = False) -> None:
        self.server = server
        self.kernel_stamps = kernel_stamps  # open loop: arrivals timed by the kernel
        self.clients = [Client(self, i) for i in range(n)]
        self.by_nick = {c.nick: c for c in self.clients}
        self.readers: list[gevent.Greenlet[Any, Any]] = []
        self.measuring = False
        self.sending = False
        self.closed_loop = False
        # Flat int64 arrays, not lists of tuples: nothing for the garbage collector to walk.
        self.latencies = array("q")
        self.arrivals: array[int] | None = None  # parallel to latencies when per-second figures are wanted
        self.late = array("q")  # open loop: how late the generator sent each line

    def connect_all(self, clients: Sequence[Client] | None = None, rcvbuf: int | None = None) -> None:
        """Connect and register (bounded concurrency), then start each reader."""
        pool = Pool(REGISTER_CONCURRENCY)

        def join(c: Client) -> None:
            c.connect(self.server.address, rcvbuf)
            c.register()
            self.readers.append(gevent.spawn(c.read_loop))

        for c in clients if clients is not None else self.clients:
            pool.spawn(join, c)
        pool.join(raise_error=True)

    def start_open_loop(self, rate: float, until: float) -> list[gevent.Greenlet[Any, Any]]:
        """Every client sends at ``rate`` until ``until``, their phases spread over one period."""
        n = len(self.clients)
        return [gevent.spawn(c.open_loop, rate, i / n / rate, until) for i, c in enumerate(self.clients)]

    def received(self) -> int:
        return sum(c.lines - c.notices for c in self.clients)

    def wait_drained(self, receivers: Sequence[Client], timeout: float = DRAIN_SECONDS) -> None:
        """Wait until every receiver has every line sent to it (or ``timeout``)."""
        total_sent = sum(c.sent for c in self.clients)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.lines - c.notices >= total_sent - c.sent or c.closed for c in receivers):
                return
            gevent.sleep(0.01)

    def tally(self, receivers: Sequence[Client]) -> dict[str, Any]:
        total_sent = sum(c.sent for c in self.clients)
        lost = dup = 0
        for c in receivers:
            diff = (c.lines - c.notices) - (total_sent - c.sent)
            if diff < 0:
                lost -= diff
            else:
                dup += diff
        return {
            "sent": total_sent,
            "lost": lost,
            "dup": dup,
            "ooo": sum(c.reorders + c.dups for c in receivers),
            "seq_gaps": sum(c.gaps for c in receivers),
            # Clients the server disconnected during the run (their missing lines are in lost).
            "disconnected": sum(1 for c in self.clients if c.closed or c.send_failed),
            "server_alive": self.server.proc.poll() is None,
            "server_slow_cuts": self.server.slow_cuts(),
        }

    def close(self) -> None:
        for c in self.clients:
            c.close()
        gevent.killall(self.readers, block=True, timeout=5)
