"""The generator's clients: each counts what it receives in bulk and checks its tracked senders.

Counting lines with ``bytes.count`` and finding tracked senders with
``bytes.find`` keeps a Python generator ahead of the server; only tracked
lines are parsed (sequence and latency).  See the package docstring.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gevent
from gevent import socket

if TYPE_CHECKING:
    from .bench import Bench

RECV_BYTES = 262144
WINDOW = 8  # closed loop: lines of its own a sender may have in flight
PAD = b"x" * 16
NOTICE = b"*** "

now_ns = time.monotonic_ns
#: Linux's SO_TIMESTAMPNS (the "old" 64-bit timespec form); the module lacks it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")


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
