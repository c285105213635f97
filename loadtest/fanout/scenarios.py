"""The scenarios: closed-loop fan-out, open-loop latency, a slow consumer, idle connections.

Each starts its own server, so one scenario's leftovers (memory, greenlets)
never colour the next one's figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

import gevent

from .bench import Bench
from .clients import Client, Track, now_ns
from .measure import Meter, quantiles_ms
from .server import ServerProcess, raise_nofile

#: Scenarios whose generator needs sub-millisecond timers (see the docstring).
PRECISE_TIMERS = ("latency", "slow-consumer")


def closed_loop(name: str, clients: int, senders: int, duration: float) -> dict[str, Any]:
    """``senders`` of ``clients`` keep WINDOW lines in flight; the rest only read."""
    server = ServerProcess()
    bench = Bench(server, clients)
    try:
        bench.connect_all()
        step = clients // senders
        sending = [bench.clients[i * step] for i in range(senders)]
        for s in sending:  # the witness of sender i is client i+1
            witness = bench.clients[(s.index + 1) % clients]
            witness.track[b"\n" + s.nick + b": "] = Track(s)
        bench.sending = bench.closed_loop = True
        for s in sending:
            s.acked(0)  # fill the window
        gevent.sleep(min(1.0, duration / 4))  # warm up
        bench.measuring = True
        before, meter = bench.received(), Meter(server)
        gevent.sleep(duration)
        after, usage = bench.received(), meter.read()
        bench.measuring = False
        bench.sending = False
        bench.wait_drained(bench.clients)
        rate = (after - before) / usage["seconds"]
        return {
            "scenario": name,
            "clients": clients,
            "senders": senders,
            "deliveries_per_s": round(rate),
            **quantiles_ms(bench.latencies),
            **bench.tally(bench.clients),
            **usage,
        }
    finally:
        bench.close()
        server.stop()


def latency(duration: float, clients: int = 100, rate: float = 10.0, tracked: int = 10) -> dict[str, Any]:
    """Open loop: every client sends ``rate`` lines/s; each receiver times ``tracked`` senders."""
    server = ServerProcess()
    bench = Bench(server, clients, kernel_stamps=True)
    try:
        bench.connect_all()
        step = max(1, clients // tracked)
        for c in bench.clients:
            for j in range(min(tracked, clients - 1)):
                s = bench.clients[(c.index + 1 + j * step) % clients]
                if s is not c:
                    c.track[b"\n" + s.nick + b": "] = Track(s)
        bench.sending = True
        bench.measuring = True
        meter = Meter(server)
        until = time.monotonic() + duration
        senders = bench.start_open_loop(rate, until)
        gevent.joinall(senders, raise_error=True)
        bench.wait_drained(bench.clients)
        usage = meter.read()
        bench.measuring = False
        return {
            "scenario": "latency",
            "clients": clients,
            "senders": clients,
            "deliveries_per_s": round(bench.received() / duration),
            **quantiles_ms(bench.latencies),
            **bench.tally(bench.clients),
            **usage,
            "timed": len(bench.latencies),
            "gen_late_p99_ms": quantiles_ms(bench.late)["p99_ms"],
        }
    finally:
        bench.sending = False
        bench.close()
        server.stop()


def slow_consumer(duration: float, clients: int = 20, rate: float = 100.0) -> dict[str, Any]:
    """Open loop among ``clients`` plus one that never reads; per-second figures."""
    server = ServerProcess()
    bench = Bench(server, clients, kernel_stamps=True)
    slow = Client(bench, clients)
    slow.nick = b"slow"
    try:
        bench.connect_all()
        slow.connect(server.address, rcvbuf=4096)  # a small window fills sooner
        slow.register()  # ...and never reads again
        for c in bench.clients:
            c.track_all = True
        bench.arrivals = array("q")
        bench.sending = bench.measuring = True
        rss0 = server.rss_bytes()
        meter = Meter(server)
        start = time.monotonic()
        until = start + duration
        senders = bench.start_open_loop(rate, until)
        rss_peak, cut_at = rss0, None
        while time.monotonic() < until:
            gevent.sleep(0.25)
            rss_peak = max(rss_peak, server.rss_bytes())
            if cut_at is None and any(b"slow left" in n for c in bench.clients for n in c.notice_lines):
                cut_at = round(time.monotonic() - start, 1)
        gevent.joinall(senders, raise_error=True)
        bench.wait_drained(bench.clients)
        usage = meter.read()
        bench.measuring = False
        seconds = _per_second(bench.arrivals, bench.latencies, int(start * 1e9), int(duration))
        cut_notices = [n.decode() for c in bench.clients[:1] for n in c.notice_lines if b"slow left" in n]
        return {
            "scenario": "slow-consumer",
            "clients": clients + 1,
            "senders": clients,
            "deliveries_per_s": round(bench.received() / duration),
            **quantiles_ms(bench.latencies),
            **bench.tally(bench.clients),
            **usage,
            "gen_late_p99_ms": quantiles_ms(bench.late)["p99_ms"],
            "slow_cut_after_s": cut_at,
            "slow_cut_notice": cut_notices[-1] if cut_notices else None,
            "rss_growth_mb": round((rss_peak - rss0) / 2**20, 1),
            "per_second_rate_min": min(s["rate"] for s in seconds) if seconds else None,
            "per_second_rate_max": max(s["rate"] for s in seconds) if seconds else None,
            "per_second_p99_ms_max": max(s["p99_ms"] for s in seconds) if seconds else None,
            "per_second": seconds,
        }
    finally:
        bench.sending = False
        slow.close()
        bench.close()
        server.stop()


def _per_second(arrivals: array[int], lats: array[int], start_ns: int, seconds: int) -> list[dict[str, Any]]:
    """Deliveries and latency per whole second of the run (the timed lines are all lines)."""
    buckets: list[list[int]] = [[] for _ in range(seconds)]
    for arrived, lat in zip(arrivals, lats, strict=True):
        i = (arrived - start_ns) // 1_000_000_000
        if 0 <= i < seconds:
            buckets[i].append(lat)
    return [{"second": i, "rate": len(b), **quantiles_ms(b)} for i, b in enumerate(buckets) if b]


def idle(clients: int) -> dict[str, Any]:
    """Many registered idle connections: RSS per connection; one broadcast reaches all."""
    wanted = clients + 200
    limit = raise_nofile(wanted)
    usable = min(clients, limit - 200)
    note = ""
    if usable < clients:
        note = f"RLIMIT_NOFILE allows only {limit}: using {usable} connections, not {clients}"
        print(f"fanout: {note}", file=sys.stderr)
    server = ServerProcess(nofile=limit)
    bench = Bench(server, usable)
    try:
        gevent.sleep(0.5)
        rss0 = server.rss_bytes()
        meter = Meter(server)
        t0 = time.monotonic()
        bench.connect_all()
        # Every join is announced to everyone already there: wait for those notices.
        expected = usable * (usable - 1) // 2
        deadline = time.monotonic() + 600
        while sum(c.notices for c in bench.clients) < expected and time.monotonic() < deadline:
            gevent.sleep(0.2)
        join_seconds = round(time.monotonic() - t0, 1)
        gevent.sleep(1.0)  # let the server's writers go idle
        rss1 = server.rss_bytes()
        caster = bench.clients[0]
        for c in bench.clients[1:]:
            c.track[b"\n" + caster.nick + b": "] = Track(caster)
        bench.measuring = True
        t1 = time.monotonic()
        assert caster.sock is not None
        caster.sock.sendall(caster.message(now_ns()))
        bench.wait_drained(bench.clients[1:], timeout=60)
        reach_seconds = time.monotonic() - t1
        reached = sum(1 for c in bench.clients[1:] if c.track[b"\n" + caster.nick + b": "].next_seq == 1)
        usage = meter.read()
        return {
            "scenario": "idle-10k" if clients == 10_000 else f"idle-{clients}",
            "clients": usable,
            "senders": 1,
            "deliveries_per_s": None,
            **quantiles_ms(bench.latencies),
            **bench.tally(bench.clients[1:]),
            **usage,
            "reached": reached,
            "broadcast_ms": round(reach_seconds * 1000, 1),
            "register_all_s": join_seconds,
            "rss_per_conn_kb": round((rss1 - rss0) / usable / 1024, 2),
            "note": note,
        }
    finally:
        bench.close()
        server.stop()


def _fanout_100(a: argparse.Namespace) -> dict[str, Any]:
    clients = a.clients or 100
    return closed_loop("fanout-100", clients, a.senders or clients, a.duration or 10)


def _fanout_500x20(a: argparse.Namespace) -> dict[str, Any]:
    return closed_loop("fanout-500x20", a.clients or 500, a.senders or 20, a.duration or 10)


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "fanout-100": _fanout_100,
    "fanout-500x20": _fanout_500x20,
    "latency": lambda a: latency(a.duration or 10, a.clients or 100),
    # The slow reader is cut only once the kernel buffers (up to tcp_wmem's 4 MB) and its
    # outbox are full: at 2,000 lines/s that takes most of a minute.
    "slow-consumer": lambda a: slow_consumer(a.duration or 60, a.clients or 20),
    "idle-10k": lambda a: idle(a.clients or 10_000),
}
