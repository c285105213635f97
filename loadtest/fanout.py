"""Fan-out benchmark: throughput, latency and memory of the chat server at its limit.

``python -m loadtest.fanout [--scenario NAME | all] [--json] [--duration S] [--repeat N]``

Steps: start ``python -m gevent_chat.server`` as a subprocess pinned to core 0
(the generator pins itself to the other cores), connect and register the
clients, run the scenario, stop the server (SIGTERM, wait, kill) and print one
row (or one JSON object) per run, plus a median row when ``--repeat`` > 1.

How deliveries are checked (the server never echoes a line to its sender):
- Every client reads everything.  Its reader counts complete lines in bulk
  (``data.count(b"\\n")``) and finds notice lines (``*** ...``) with
  ``bytes.find``; chat lines = lines - notices.  All clients register before
  anyone sends and nobody leaves, so each receiver must get exactly the sum of
  what the others sent: a shortfall is counted as ``lost``, an excess as
  ``dup``.  That covers every (sender, receiver) pair.
- Each receiver also *tracks* some senders (``bytes.find`` of
  ``b"\\n<nick>: "``): it parses those lines for the sequence number (gaps,
  reorders, duplicates: ``ooo`` and ``seq_gaps``) and the send time carried in
  the line (latency, ``time.monotonic_ns``, one clock for the whole machine).
- Closed loop (``fanout-*``): the witness of sender ``i`` is client ``i+1``,
  which tracks it; each line the witness sees frees one of the sender's 8
  in-flight slots, and the witness's greenlet sends the replacement at once.
- Open loop (``latency``, ``slow-consumer``): each sender has a schedule
  (a fixed rate, phases spread); a line carries its *scheduled* time, and
  overdue lines are sent at once, so a stall shows up as latency instead of
  as fewer samples (no coordinated omission).  Every receiver tracks every
  sender, so every delivery is timed.

Line format (the server adds ``nick: ``): ``<seq> <send-time-ns> <padding>``,
about 48 bytes in all, like a chat line.

Timers: libev's default epoll backend sleeps in whole milliseconds, so an
open-loop sender wakes about 0.5 ms late at the median (1.1 ms at p99) and,
since latency counts from the scheduled time, that lateness would be measured
as the server's.  The open-loop scenarios therefore run the generator on
libev's ``select`` backend, which sleeps to the microsecond (0.1 ms late at the
median); ``select`` only handles descriptors below 1024, which they stay under.
With ``--scenario all`` each scenario runs in a process of its own, so each
gets its backend.

Arrival times: in the open-loop scenarios a line's arrival is the kernel's
receive timestamp (``SO_TIMESTAMPNS``, read with ``recvmsg``): on loopback
that is when the server's ``send`` put it in the receiving socket.  With 100
clients, each line wakes 99 receiving greenlets in this one process; timing
them with the clock as each gets its turn would add this process's own
queueing, up to a millisecond, to every figure.  The send side stays as it
is: latency counts from the scheduled time.

Load stays on 127.0.0.1 and every run stops by itself.  The generator is one
gevent process: check its CPU % in the output; near 100 % it, not the server,
is the limit.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import socket
from gevent.pool import Pool

SERVER_CORE = 0
#: Scenarios whose generator needs sub-millisecond timers (see the docstring).
PRECISE_TIMERS = ("latency", "slow-consumer")
#: Flags for every benchmark server: flood control off (it would pace the senders and
#: measure the limit, not the server) and room for every benchmark connection.
SERVER_ARGS = ["--rate-limit", "0", "--max-clients", "20000"]
#: Extra server flags from ``--server-arg`` (for example ``--outbox-size=2000``).
EXTRA_SERVER_ARGS: list[str] = []
RECV_BYTES = 262144
WINDOW = 8  # closed loop: lines of its own a sender may have in flight
PAD = b"x" * 16
NOTICE = b"*** "
DRAIN_SECONDS = 10.0
REGISTER_CONCURRENCY = 200

now_ns = time.monotonic_ns
#: Linux's SO_TIMESTAMPNS (the "old" 64-bit timespec form); the module lacks it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")


# -- the server under test ------------------------------------------------------------


class ServerProcess:
    """``gevent_chat.server`` in a subprocess on one core; its log goes to a temp file."""

    def __init__(self, extra_args: Sequence[str] = (), nofile: int | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="fanout-server-", suffix=".log", delete=False)  # noqa: SIM115
        pin = _can_pin()

        def prepare() -> None:  # runs in the child, before exec
            if pin:
                os.sched_setaffinity(0, {SERVER_CORE})
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        argv = [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--log-level", "info", *SERVER_ARGS, *EXTRA_SERVER_ARGS, *extra_args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log, preexec_fn=prepare)
        self.pid = self.proc.pid
        self.address = self._wait_listening(10.0)

    def _wait_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log.name, "rb") as f:
                for line in f:
                    if b"listening on " in line:
                        hostport = line.split(b"listening on ", 1)[1].strip().decode()
                        host, port = hostport.rsplit(":", 1)
                        return host, int(port)
            if self.proc.poll() is not None:
                break
            gevent.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not start; log: {self.log_text()}")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log_text(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def slow_cuts(self) -> int:
        """Clients the server cut as too slow, from its log."""
        return self.log_text().count("cut: outbox full")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def _can_pin() -> bool:
    return len(os.sched_getaffinity(0)) > 1 and SERVER_CORE in os.sched_getaffinity(0)


def pin_generator() -> None:
    if _can_pin():
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {SERVER_CORE})


def raise_nofile(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- one client ----------------------------------------------------------------------------


@dataclass
class Track:
    """What one receiver knows of one sender's sequence."""

    sender: Client
    next_seq: int = 0
    missing: set[int] = field(default_factory=set)


class Client:
    """A chat client: counts lines in bulk, parses only the tracked senders' lines."""

    def __init__(self, bench: Bench, index: int) -> None:
        self.bench = bench
        self.index = index
        self.nick = f"c{index}".encode()
        self.sock: socket.socket | None = None
        self.lines = 0  # complete lines after registration (chat + notices)
        self.notices = 0
        self.notice_lines: list[bytes] = []
        self.tail = b""
        self.track: dict[bytes, Track] = {}  # b"\n<nick>: " -> state
        self.track_all = False
        self.sent = 0  # chat lines sent
        self.inflight = 0
        self.dups = 0
        self.reorders = 0
        self.gaps = 0
        self.closed = False  # our reader saw EOF or an error
        self.send_failed = False
        self.kernel_stamps = bench.kernel_stamps
        self.arrived = 0  # monotonic ns of the chunk being fed, when kernel_stamps

    def connect(self, addr: tuple[str, int], rcvbuf: int | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(30)
        sock.connect(addr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def register(self) -> None:
        """Answer the prompt; keep whatever follows the welcome line."""
        assert self.sock is not None
        buf = b""
        while b"nickname: " not in buf:
            buf += self._recv_some()
        self.sock.sendall(self.nick + b"\n")
        buf = b""
        while True:
            end = buf.find(b"\n", buf.find(b"*** Welcome"))
            if b"*** Welcome" in buf and end >= 0:
                break
            if b"*** " in buf and b"Welcome" not in buf and buf.endswith(b"\n"):
                raise RuntimeError(f"{self.nick!r} not registered: {buf!r}")
            buf += self._recv_some()
        self.sock.settimeout(None)
        rest = buf[end + 1 :]
        if rest:
            self.feed(rest)

    def _recv_some(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError(f"{self.nick!r}: server closed during registration")
        return data

    def read_loop(self) -> None:
        if self.kernel_stamps:
            self._stamped_read_loop()
            return
        recv = self.sock.recv  # type: ignore[union-attr]
        feed = self.feed
        try:
            while True:
                data = recv(RECV_BYTES)
                if not data:
                    break
                feed(data)
        except OSError:
            pass
        self.closed = True

    def _stamped_read_loop(self) -> None:
        """``read_loop``, with each chunk timed by the kernel's receive timestamp."""
        sock = self.sock
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # The kernel stamps with CLOCK_REALTIME; lines carry CLOCK_MONOTONIC.
        offset = time.time_ns() - now_ns()
        space = socket.CMSG_SPACE(_TIMESPEC.size)
        try:
            while True:
                data, ancillary, _flags, _addr = sock.recvmsg(RECV_BYTES, space)
                if not data:
                    break
                self.arrived = 0
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                        self.arrived = sec * 1_000_000_000 + nsec - offset
                self.feed(data)
        except OSError:
            pass
        self.closed = True

    def feed(self, data: bytes) -> None:
        """Account for one received chunk; only complete lines count."""
        last = data.rfind(b"\n")
        if last < 0:
            self.tail += data
            return
        first = data.find(b"\n")
        self.lines += data.count(b"\n")
        # The line completed by this chunk's first newline, begun in an earlier one.
        seam = self.tail + data[:first]
        self.tail = data[last + 1 :]
        if seam.startswith(NOTICE):
            self._notice(seam)
        elif self.track_all or self.track:
            self._seam_line(seam)
        # Every later complete line starts right after a newline in [first, last).
        pos = data.find(b"\n*** ", first, last)
        while pos >= 0:
            end = data.find(b"\n", pos + 1)
            self._notice(data[pos + 1 : end])
            pos = data.find(b"\n*** ", end, last)
        if self.track_all:
            for line in data[first + 1 : last].split(b"\n"):
                self._seam_line(line)
        else:
            for pattern, track in self.track.items():
                hits = 0
                pos = data.find(pattern, first, last)
                while pos >= 0:
                    end = data.find(b"\n", pos + 1)
                    self._check(track, data[pos + len(pattern) : end])
                    hits += 1
                    pos = data.find(pattern, end, last)
                if hits:
                    track.sender.acked(hits)

    def _notice(self, line: bytes) -> None:
        self.notices += 1
        if len(self.notice_lines) < 100:
            self.notice_lines.append(line)

    def _seam_line(self, line: bytes) -> None:
        colon = line.find(b": ")
        if colon < 0 or line.startswith(NOTICE):
            return
        track = self.track.get(b"\n" + line[:colon] + b": ")
        if track is None:
            if not self.track_all:
                return
            sender = self.bench.by_nick.get(line[:colon])
            if sender is None:
                return
            track = self.track[b"\n" + line[:colon] + b": "] = Track(sender)
        self._check(track, line[colon + 2 :])
        if not self.track_all:
            track.sender.acked(1)

    def _check(self, track: Track, body: bytes) -> None:
        """Sequence and latency check of one tracked line ``<seq> <ns> <pad>``."""
        arrived = self.arrived or now_ns()
        parts = body.split(b" ", 2)
        seq, sent_ns = int(parts[0]), int(parts[1])
        if seq == track.next_seq:
            track.next_seq = seq + 1
        elif seq > track.next_seq:
            self.gaps += seq - track.next_seq
            track.missing.update(range(track.next_seq, seq))
            track.next_seq = seq + 1
        elif seq in track.missing:
            track.missing.discard(seq)
            self.gaps -= 1
            self.reorders += 1
        else:
            self.dups += 1
        bench = self.bench
        if bench.measuring:
            bench.latencies.append(arrived - sent_ns)
            if bench.arrivals is not None:
                bench.arrivals.append(arrived)

    # -- sending -----------------------------------------------------------------

    def message(self, sent_ns: int) -> bytes:
        seq = self.sent
        self.sent += 1
        return b"%d %d %s\n" % (seq, sent_ns, PAD)

    def acked(self, n: int) -> None:
        """Closed loop: ``n`` of our lines reached the witness; refill the window."""
        bench = self.bench
        if not bench.closed_loop:
            return
        self.inflight -= n
        if bench.sending and self.sock is not None:
            room = WINDOW - self.inflight
            if room > 0 and not self.send_failed:
                t = now_ns()
                self.inflight += room
                self._send(b"".join([self.message(t) for _ in range(room)]))

    def _send(self, data: bytes) -> None:
        """Send, or note that the server has cut us (reported as a disconnect)."""
        try:
            self.sock.sendall(data)  # type: ignore[union-attr]
        except OSError:
            self.send_failed = True

    def open_loop(self, rate: float, phase: float, until: float) -> None:
        """Send at ``rate`` lines/s on a fixed schedule; late lines go at once, stamped on time."""
        assert self.sock is not None
        period_ns = int(1e9 / rate)
        next_ns = int((time.monotonic() + phase) * 1e9)
        until_ns = int(until * 1e9)
        while next_ns < until_ns and self.bench.sending and not self.send_failed:
            wait = next_ns - now_ns()
            if wait > 0:
                gevent.sleep(wait / 1e9)
            t = now_ns()
            if self.bench.measuring:
                self.bench.late.append(t - next_ns)
            batch = []
            while next_ns <= t and next_ns < until_ns:
                batch.append(self.message(next_ns))
                next_ns += period_ns
            if batch:
                self._send(b"".join(batch))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


# -- a benchmark run --------------------------------------------------------------------


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


class Meter:
    """CPU of the server and of this process, and server RSS, over a window."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.t0 = time.monotonic()
        self.srv0 = server.cpu_seconds()
        self.gen0 = _own_cpu()
        self.busy0 = _machine_busy()

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        srv = self.server.cpu_seconds() - self.srv0
        gen = _own_cpu() - self.gen0
        other = _machine_busy() - self.busy0 - srv - gen
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


def _machine_busy() -> float:
    """CPU seconds all CPUs spent not idle, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    busy = sum(ticks[:8]) - idle  # user..steal; guest time is already in user
    return busy / os.sysconf("SC_CLK_TCK")


def _quantiles_ms(samples: Sequence[int]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(samples)
    pick = lambda q: round(s[min(len(s) - 1, int(q * len(s)))] / 1e6, 3)  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(s[-1] / 1e6, 3)}


# -- scenarios -------------------------------------------------------------------------------


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
            **_quantiles_ms(bench.latencies),
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
            **_quantiles_ms(bench.latencies),
            **bench.tally(bench.clients),
            **usage,
            "timed": len(bench.latencies),
            "gen_late_p99_ms": _quantiles_ms(bench.late)["p99_ms"],
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
            **_quantiles_ms(bench.latencies),
            **bench.tally(bench.clients),
            **usage,
            "gen_late_p99_ms": _quantiles_ms(bench.late)["p99_ms"],
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
    return [{"second": i, "rate": len(b), **_quantiles_ms(b)} for i, b in enumerate(buckets) if b]


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
            **_quantiles_ms(bench.latencies),
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

COLUMNS = [
    ("scenario", "{:<14}"),
    ("clients", "{:>7}"),
    ("deliveries_per_s", "{:>11}"),
    ("p50_ms", "{:>8}"),
    ("p99_ms", "{:>8}"),
    ("max_ms", "{:>8}"),
    ("lost", "{:>6}"),
    ("dup", "{:>5}"),
    ("ooo", "{:>5}"),
    ("disconnected", "{:>5}"),
    ("server_cpu_pct", "{:>7}"),
    ("server_rss_mb", "{:>7}"),
    ("gen_cpu_pct", "{:>7}"),
    ("other_cpu_pct", "{:>7}"),
]
HEADERS = ["scenario", "clients", "deliv/s", "p50 ms", "p99 ms", "max ms", "lost", "dup", "ooo", "disc"]
HEADERS += ["srv CPU%", "srv MB", "gen CPU%", "other%"]
EXTRA = ["gen_late_p99_ms", "slow_cut_after_s", "rss_growth_mb", "per_second_rate_min", "per_second_rate_max"]
EXTRA += ["per_second_p99_ms_max", "reached", "broadcast_ms", "register_all_s", "rss_per_conn_kb", "note"]


def format_row(r: dict[str, Any]) -> str:
    cells = [fmt.format("-" if r.get(k) is None else r[k]) for k, fmt in COLUMNS]
    extra = [f"{k}={r[k]}" for k in EXTRA if r.get(k) not in (None, "")]
    if r.get("server_alive") is False:
        extra.insert(0, "SERVER DIED")
    return "  ".join(cells) + ("  " + " ".join(extra) if extra else "")


def header() -> str:
    widths = [len(fmt.format("")) for _, fmt in COLUMNS]
    cells = [f"{h:>{w}}" for h, w in zip(HEADERS, widths, strict=True)]
    cells[0] = f"{HEADERS[0]:<{widths[0]}}"
    return "  ".join(cells)


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": runs[0]["scenario"], "runs": len(runs), "median": True}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
            out[k] = statistics.median(values)
        elif k not in out:
            out[k] = v if all(r.get(k) == v for r in runs) else None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.fanout", description=__doc__.split("\n")[0])
    p.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument(
        "--duration", type=float, default=0.0, help="seconds of measurement (default 10; slow-consumer 60)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario; adds a median row")
    p.add_argument("--clients", type=int, default=0, help="override the scenario's client count")
    p.add_argument("--senders", type=int, default=0, help="override the closed-loop sender count")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="pass a flag to the server, e.g. --server-arg=--outbox-size=2000 (repeatable)",
    )
    args = p.parse_args(argv)
    if args.scenario == "all":
        return _run_each_in_own_process(list(argv if argv is not None else sys.argv[1:]), args.json)
    if args.scenario in PRECISE_TIMERS:
        gevent.config.libev_backend = "select"  # before anything creates the hub
    EXTRA_SERVER_ARGS[:] = args.server_arg
    pin_generator()
    raise_nofile(4096)
    # The generator makes almost no reference cycles; a full collection walking every
    # client and greenlet mid-run would stall all readers at once and show up as
    # server latency.  Collect between runs instead.
    gc.disable()
    names = [args.scenario]
    if not args.json:
        cpu = _cpu_model()
        print(f"# {cpu}; server on core {SERVER_CORE}, generator on {sorted(os.sched_getaffinity(0))}")
        print(header())
    for name in names:
        runs = []
        for _ in range(args.repeat):
            result = SCENARIOS[name](args)
            gc.collect()
            runs.append(result)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(format_row(result), flush=True)
        if args.repeat > 1:
            m = median_row(runs)
            print(json.dumps(m) if args.json else format_row({**m, "scenario": f"{name} (med)"}), flush=True)
    return 0


def _run_each_in_own_process(argv: list[str], as_json: bool) -> int:
    """Run every scenario as ``python -m loadtest.fanout --scenario NAME``, in turn."""
    rest = [a for a in argv if a != "--scenario=all"]
    if "--scenario" in rest:
        i = rest.index("--scenario")
        del rest[i : i + 2]
    status = 0
    for n, name in enumerate(SCENARIOS):
        # Print the table header once: later children's "#" and header lines are dropped.
        child = subprocess.run(
            [sys.executable, "-m", "loadtest.fanout", "--scenario", name, *rest],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        for line in child.stdout.splitlines():
            if as_json or n == 0 or not (line.startswith("#") or line.startswith("scenario")):
                print(line, flush=True)
        status = status or child.returncode
    return status


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
