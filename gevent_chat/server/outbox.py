"""One connection's way out: a bounded outbox and the writer that drains it.

SHELL.  Two ways out, never both at once.  With no writer, ``deliver``
keeps the bytes until the end of the loop turn, when ``send_due`` sends
them in one non-blocking ``send``; what the kernel does not take goes on a
bounded ``gevent.queue.Queue``, and a writer greenlet takes everything
queued and sends it in one write until the queue is empty.  Memory per idle
connection is what limits how many one process holds, so the writer and its
queue exist only while the socket is backed up: they are made when a direct
send leaves bytes over (at once on TLS and framed transports), and the
writer ends, handing both back to the ``WriterPool``, as soon as the queue
is empty.
Nothing kills a writer: closing the socket fails its ``send``, and that is
how a stuck one is stopped.

Contract (see the README's "Concurrency"):
- ``deliver`` never blocks and never touches the socket: it is safe to call
  from any greenlet, for any number of recipients, with no lock held.
- ``pending`` counts the lines queued or being sent; a delivery that finds
  it at ``limit`` means the client stopped reading: it is cut (its queue
  dropped, its reader woken to tear it down), and the room carries on.
- ``give_time`` is the one wait a sender may do for a recipient: bounded,
  and skipped when the recipient's writer has stalled.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gevent.event import Event
from gevent.queue import Queue, ShutDown
from gevent.socket import socket as gsocket

from .metrics import Tally
from .tls import shutdown_fd

if TYPE_CHECKING:
    from .writers import WriterPool

__all__ = ["SLOW", "Outbox", "send_due"]

log = logging.getLogger("gevent_chat")

#: A recipient whose writer has sent nothing for this long, and whose kernel
#: send queue has not shrunk meanwhile, is not waited for: it has stopped
#: reading, and waiting on it would only delay the sender.
STALLED_SECONDS = 0.25
#: How much the kernel's send queue must shrink to count as the client reading.
STALLED_BYTES = 65536
#: Linux's SIOCOUTQ: bytes the kernel still holds for the peer.
_OUTQ = getattr(termios, "TIOCOUTQ", None)

#: The cut reason of a client whose outbox filled up.
SLOW = "too slow"


class Outbox:
    """The bounded output side of one connection."""

    __slots__ = (
        "_cut",
        "_direct",
        "_drained",
        "_progress",
        "_raw",
        "_unsent",
        "closing",
        "cut_reason",
        "frame",
        "limit",
        "outbox",
        "peer",
        "pending",
        "sock",
        "tally",
        "writers",
    )

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        limit: int,
        writers: WriterPool,
        tally: Tally,
        frame: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.sock = sock
        #: How the transport turns queued lines into bytes on the wire (None: as they are).
        self.frame = frame
        self.peer = peer
        self.limit = limit
        self.writers = writers
        self.tally = tally
        # Entries may each carry several lines; ``pending`` counts the lines.
        # The queue exists exactly while a writer runs for this connection.
        self.outbox: Queue[bytes] | None = None
        self.pending = 0
        self.closing = False
        self.cut_reason: str | None = None
        self._cut = False  # cut(): what was queued is dropped, nothing to flush
        self._drained: Event | None = None
        self._progress = 0.0  # monotonic time the writer last started or sent (see _has_stalled)
        self._unsent: int | None = None  # kernel send queue as of _progress, if known
        # The fast path (see ``deliver``): what waits for this loop turn's
        # direct send, and the non-blocking OS socket to send it on.  Plain
        # TCP only: a TLS record or a frame cannot be resumed halfway by the
        # writer, so those transports always go through it.
        self._direct: bytes | list[bytes] | None = None
        self._raw = sock._sock if type(sock) is gsocket and frame is None else None  # type: ignore[attr-defined]

    # -- called from any greenlet -------------------------------------------------

    def deliver(self, payload: bytes, lines: int = 1) -> None:
        """Queue ``payload`` (``lines`` complete lines) for this client; never blocks.

        While a writer runs, the payload joins its queue.  Otherwise (the
        usual case for a client that keeps up) it waits in ``_direct`` until
        the end of this loop turn, when ``WriterPool`` sends everything due
        with one ``send`` per client from the hub (``send_due``); only
        what the kernel does not take starts a writer.  So bytes for one
        client always leave in the order they were delivered: the writer
        exists only after the direct send, and the direct path only when
        there is no writer.
        """
        if self.closing:
            return
        if self.pending >= self.limit:
            self.cut(SLOW)
            return
        self.pending += lines
        outbox = self.outbox
        if outbox is not None:
            outbox.put_nowait(payload)
            return
        direct = self._direct
        if direct is None:
            if self._raw is None:
                self._start_writer([payload])
                return
            # The first delivery this turn (the usual case): the bytes
            # themselves, and this outbox on the pool's list of what is due.
            self._direct = payload
            due = self.writers.due
            if not due:
                self.writers.arm()
            due.append(self)
        elif isinstance(direct, bytes):
            self._direct = [direct, payload]
        else:
            direct.append(payload)

    def _start_writer(self, payloads: list[bytes]) -> None:
        writers = self.writers
        outbox = self.outbox = writers.outbox()
        for payload in payloads:
            outbox.put_nowait(payload)
        writers.start(self._write_loop, outbox)
        self._progress = time.monotonic()

    def cut(self, reason: str | None, force: bool = False) -> None:
        """End this connection from any greenlet, without waiting for its peer.

        Drops what is queued and makes the reader's ``recv`` return, so the
        reader runs the usual teardown (which stops a writer stuck in
        ``send``).  ``force`` applies to a connection already closing, as in
        server shutdown.
        """
        if self.closing and not force:
            return
        self.closing = True
        self.cut_reason = reason
        self._cut = True
        self._direct = None
        if self.outbox is not None:
            self.outbox.shutdown(immediate=True)
        shutdown_fd(self.sock, socket.SHUT_RD)

    def finish(self, payload: bytes, reason: str) -> None:
        """Send ``payload`` as this client's last line and close, from any greenlet.

        Unlike ``cut``, what is queued (the payload included) is still sent.
        """
        if self.closing:
            return
        self.deliver(payload)
        self.closing = True  # nothing more is queued; teardown waits for the writer
        self.cut_reason = reason
        shutdown_fd(self.sock, socket.SHUT_RD)  # the reader's recv returns b""

    def give_time(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for this outbox to drain below half full,
        unless its writer has stalled: then the client is not reading, and it
        is left to fill up and be cut without delaying anyone."""
        if not self._has_stalled():
            self.wait_drained(timeout)

    def _has_stalled(self) -> bool:
        """True if nothing reached the client for ``STALLED_SECONDS``.

        A blocked ``send`` returns only once the kernel has room for much
        more than one read frees (a third of a send buffer that grows to
        megabytes), so a client reading steadily at a few MB/s can keep a
        writer in one ``send`` for longer than that.  The kernel's queue of
        unsent bytes tells: if it shrank by ``STALLED_BYTES`` since the
        writer blocked, the client reads.  (One that does not still takes a
        few KB now and then, through window probes.)
        """
        now = time.monotonic()
        if now - self._progress < STALLED_SECONDS:
            return False
        unsent = _unsent_bytes(self.sock)
        if unsent is None:
            return True  # cannot tell: trust the writer's clock alone
        seen = self._unsent
        if seen is None:  # blocked with no partial send (always so on TLS):
            self._progress, self._unsent = now, unsent  # judge from now on
            return False
        if seen - unsent >= STALLED_BYTES:
            self._progress, self._unsent = now, unsent
            return False
        return True

    def wait_drained(self, timeout: float) -> None:
        """Wait until this outbox is at most half full, or ``timeout`` passes."""
        if self._drained is None:
            self._drained = Event()
        self._drained.clear()
        self._drained.wait(timeout)

    def wait_flushed(self, timeout: float) -> bool:
        """Wait until the writer has sent everything and ended; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.outbox is not None or self._direct is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait_drained(remaining)
        return True

    def send_last_words(self, payload: bytes) -> None:
        """Best effort, never blocking: the peer may have a full receive window."""
        try:
            self.sock.settimeout(0.0)
            self.sock.send(payload)
        except OSError:
            pass

    # -- the writer greenlet -------------------------------------------------------

    def _write_loop(self, outbox: Queue[bytes]) -> None:
        """Send everything queued, one write per turn, until the outbox is empty."""
        get_nowait, qsize = outbox.get_nowait, outbox.qsize
        send, frame = self.sock.send, self.frame
        half = self.limit // 2
        tally = self.tally
        monotonic = time.monotonic
        try:
            while n := qsize():
                data = get_nowait() if n == 1 else b"".join([get_nowait() for _ in range(n)])
                lines = data.count(b"\n")
                if frame is not None:
                    data = frame(data)
                # gevent's sendall asks the kernel for SO_SNDBUF on every call
                # (a PyPy workaround); a send loop saves that syscall.
                done = send(data)
                if done < len(data):
                    view = memoryview(data)
                    while done < len(data):
                        self._progress = monotonic()
                        # The send queue is full here: what a stall is judged by.
                        self._unsent = _unsent_bytes(self.sock)
                        done += send(view[done:])
                self._progress = monotonic()
                self._unsent = None
                tally.bytes_out += len(data)
                self.pending -= lines
                if self._drained is not None and self.pending <= half:
                    self._drained.set()
        except ShutDown:
            pass
        except OSError as exc:  # includes the socket closed under us
            log.debug("%s: send failed: %s", self.peer, exc)
            self.cut(None)
        except AttributeError:
            # Teardown closed a TLS socket while this send waited to resume:
            # gevent's SSLSocket has dropped its TLS object by then.
            if not self.closing:
                raise
        finally:
            # Nothing yields between the last qsize() and here, so no line can
            # have been queued in between: the next deliver starts a new writer.
            if self.outbox is outbox:
                self.outbox = None
                self.writers.recycle(outbox)
            if self._drained is not None:
                self._drained.set()


def send_due(due: list[Outbox]) -> None:
    """Send each outbox in ``due`` what waits for this turn, one ``send`` each.

    From the hub at the end of a loop turn (``WriterPool``): the hot loop of
    a quiet chat or a big room, so the usual case, where the kernel takes
    everything, costs one ``send`` and a few attribute updates.  While
    nothing but the direct path holds lines, ``pending`` counts exactly the
    lines in ``_direct``.  What the kernel does not take starts a writer,
    which then owns the socket until it has sent everything.
    """
    sent_bytes = 0
    for outbox in due:
        direct = outbox._direct
        if direct is None:
            continue  # cut meanwhile: nothing to send
        outbox._direct = None
        data = direct if isinstance(direct, bytes) else b"".join(direct)
        try:
            sent = outbox._raw.send(data)  # type: ignore[union-attr]
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # reset, or closed under us
            log.debug("%s: send failed: %s", outbox.peer, exc)
            outbox.cut(None)
            continue
        sent_bytes += sent
        if sent == len(data):
            outbox.pending = 0
        else:
            outbox.pending -= data.count(b"\n", 0, sent)
            outbox._start_writer([data[sent:]])
            # The send queue is full here: what a stall is judged by (as in the writer).
            outbox._unsent = _unsent_bytes(outbox.sock)
        if outbox._drained is not None:
            outbox._drained.set()
    if due:  # one pool per server, so one tally for everything on ``due``
        due[0].tally.bytes_out += sent_bytes


def _unsent_bytes(sock: socket.socket) -> int | None:
    """Bytes queued in the kernel for the peer, unacknowledged ones included;
    None where the platform cannot tell (or the socket is closed)."""
    if _OUTQ is None:
        return None
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return None
