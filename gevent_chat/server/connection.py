"""One client connection: a reader greenlet, a writer greenlet, a bounded outbox.

SHELL.  The reader (the greenlet ``StreamServer`` spawned for this socket)
receives bytes, frames them with ``LineBuffer``, and acts on each line: the
nickname while unregistered, then chat.  The writer is the only code that
writes to the socket: it blocks on the outbox, takes everything queued, and
sends it with one ``sendall``.

Memory per idle connection is what limits how many one process holds, so the
writer and its outbox exist only while there is output: ``deliver`` creates
them when there are none, and the writer ends, dropping both, as soon as the
outbox is empty.  Writers run on greenlets reused through ``WriterPool``.
Nothing kills a writer: closing the socket fails its ``sendall``, and that is
how a stuck one is stopped.

Contract (see the README's "Concurrency"):
- ``deliver`` never blocks and never touches the socket: it is safe to call
  from any greenlet, for any number of recipients, with no lock held.
- A full outbox means the client stopped reading: it is cut, and the room
  carries on.
- ``run`` waits (bounded) for the writer to flush, then closes the socket
  itself, which stops a writer still stuck in ``sendall``; only then does it
  return, because ``StreamServer`` closes the socket when the handler returns.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
import time
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event
from gevent.queue import Queue, ShutDown

from ..core import commands, protocol
from ..core.errors import ClientError
from ..core.flood import TokenBucket
from ..core.gate import Gate
from ..core.protocol import LineBuffer
from .tls import shutdown_fd

if TYPE_CHECKING:
    from ..core.rooms import Room
    from .app import ChatServer

__all__ = ["Connection"]

log = logging.getLogger("gevent_chat")

#: One ``recv`` takes at most this much; the line limit is enforced by LineBuffer.
RECV_BYTES = 65536
#: How long a closing connection may take to flush what is already queued to it.
CLOSE_FLUSH_SECONDS = 2.0
#: A reader gives way to other greenlets at least once per this many chunks.
MAX_UNYIELDED_CHUNKS = 8
#: How long a fast sender waits, per chunk, for a recipient past half full to drain.
HALF_FULL_WAIT_SECONDS = 0.05
#: A recipient whose writer has sent nothing for this long, and whose kernel
#: send queue has not shrunk meanwhile, is not waited for: it has stopped
#: reading, and waiting on it would only delay the sender.
STALLED_SECONDS = 0.25
#: How much the kernel's send queue must shrink to count as the client reading.
STALLED_BYTES = 65536
#: Linux's SIOCOUTQ: bytes the kernel still holds for the peer.
_OUTQ = getattr(termios, "TIOCOUTQ", None)

SLOW = "too slow"


class Connection:
    """State and greenlets of one TCP client."""

    __slots__ = (
        "_crowded",
        "_cut",
        "_drained",
        "_prefix",
        "_progress",
        "_reg_timer",
        "_unsent",
        "addr",
        "bucket",
        "closing",
        "cut_reason",
        "gate",
        "heard",
        "limit",
        "nick",
        "outbox",
        "peer",
        "pending",
        "room",
        "server",
        "sock",
    )

    def __init__(self, server: ChatServer, sock: socket.socket, addr: tuple[str, int]) -> None:
        self.server = server
        self.sock = sock
        self.addr = addr
        self.peer = _format_peer(addr)
        self.nick: str | None = None
        self.room: Room[Connection] | None = None
        self.limit = server.config.outbox_size
        # Entries may each carry several lines; ``pending`` counts the lines.
        # The outbox exists exactly while a writer runs for this connection.
        self.outbox: Queue[bytes] | None = None
        self.pending = 0
        self.closing = False
        self.cut_reason: str | None = None
        self._cut = False  # cut(): what was queued is dropped, nothing to flush
        self._drained: Event | None = None
        self._progress = 0.0  # monotonic time the writer last started or sent (see _has_stalled)
        self._unsent: int | None = None  # kernel send queue as of _progress, if known
        self._crowded: list[Connection] = []
        self._prefix = b""
        self._reg_timer: gevent.Timeout | None = None
        # -- protections --
        config = server.config
        self.gate = Gate(config.password, config.max_unregistered_lines, config.password_delay)
        self.bucket: TokenBucket | None = None
        if config.rate_limit:
            self.bucket = TokenBucket(config.rate_limit, config.rate_burst, time.monotonic())
        self.heard = time.monotonic()  # when data last arrived: the idle sweep reads it

    # -- called from any greenlet -------------------------------------------------

    def deliver(self, payload: bytes, lines: int = 1) -> None:
        """Queue ``payload`` (``lines`` complete lines) for this client; never blocks."""
        if self.closing:
            return
        if self.pending >= self.limit:
            self.cut(SLOW)
            return
        self.pending += lines
        outbox = self.outbox
        if outbox is None:
            writers = self.server.writers
            outbox = self.outbox = writers.outbox()
            writers.start(self._write_loop, outbox)
            self._progress = time.monotonic()
        outbox.put_nowait(payload)

    def cut(self, reason: str | None, force: bool = False) -> None:
        """End this connection from any greenlet, without waiting for its peer.

        Drops what is queued and makes the reader's ``recv`` return, so the
        reader runs the usual teardown (which stops a writer stuck in
        ``sendall``).  ``force`` applies to a connection already closing, as in
        server shutdown.
        """
        if self.closing and not force:
            return
        self.closing = True
        self.cut_reason = reason
        self._cut = True
        if self.outbox is not None:
            self.outbox.shutdown(immediate=True)
        _shutdown(self.sock, socket.SHUT_RD)

    # -- the reader greenlet -------------------------------------------------------

    def run(self) -> None:
        """Serve this connection until it ends; called by ``StreamServer``."""
        server = self.server
        log.info("connect from %s", self.peer)
        self._reg_timer = gevent.Timeout(server.config.register_timeout)
        self._reg_timer.start()
        try:
            self.deliver(self.gate.opening(), 0)
            self._read_loop()
        except gevent.Timeout as t:
            if self._reg_timer is None or t is not self._reg_timer:
                raise
            self.deliver(protocol.notice("registration timed out, goodbye"))
            self.cut_reason = "registration timeout"
            server.metrics.timeouts.labels("register").inc()
        except OSError as exc:
            if not self.closing:
                log.debug("%s: %s", self.peer, exc)
        except Exception:
            log.exception("error on connection from %s", self.peer)
            self.cut_reason = "server error"
        finally:
            if self._reg_timer is not None:
                self._reg_timer.close()
                self._reg_timer = None
            self._teardown()

    def _read_loop(self) -> None:
        recv = self.sock.recv
        frames = LineBuffer(self.server.config.max_line_bytes)
        unyielded = 0  # chunks handled since this reader last gave way
        while not self.closing:
            data = recv(RECV_BYTES)
            if not data:
                last = frames.close()
                if last is not None:
                    self._receive([last])
                return
            self._receive(frames.feed(data))
            # A short chunk means the socket is drained: the next recv parks,
            # and the writers run after every reader ready in this loop turn,
            # each sending what all of them queued in one sendall.  A full
            # chunk means more is waiting: give way now, so one fast sender
            # cannot hold the hub.  (A TLS recv returns one record, 16 KiB at
            # most, so there the 8-chunk bound is what applies.)
            unyielded += 1
            if len(data) == RECV_BYTES or unyielded >= MAX_UNYIELDED_CHUNKS or self._crowded:
                self._let_recipients_drain()
                unyielded = 0

    def _handle(self, lines: list[bytes | None]) -> None:
        """Act on each received line in order; chat lines go out in batches.

        Recipients (this client too, for its replies) get a turn to drain
        after every half outbox of lines, chat or command, so a burst of
        short lines in one chunk cannot fill a reading client's outbox by
        itself.
        """
        batch: list[bytes] = []
        batch_max = max(1, self.limit >> 1)
        handled = 0  # lines acted on since recipients last had a turn
        for line in lines:
            if handled >= batch_max:
                self._flush(batch)
                if self.pending > batch_max:
                    self._crowded.append(self)
                self._let_recipients_drain()
                handled = 0
            if self.closing:
                break
            handled += 1
            if line is None:
                self._flush(batch)
                limit = self.server.config.max_line_bytes
                error = protocol.notice(f"error: line too long (limit {limit} bytes)")
                if self.nick is None:  # it was a (far too long) nickname: ask again
                    error += protocol.NICK_PROMPT
                self.deliver(error)
            elif self.nick is None:
                self._try_register(line)
            elif line[:1] == b"/":
                self._flush(batch)
                self._command(line.decode("utf-8", "replace"))
            elif protocol.is_clean_ascii(line):
                if line.strip():
                    batch.append(self._prefix + line + b"\n")
            else:
                text = protocol.clean_text(line)
                if not protocol.is_blank(text):
                    batch.append(self._prefix + text.encode() + b"\n")
        self._flush(batch)

    def _flush(self, batch: list[bytes]) -> None:
        """Relay the chat lines gathered so far, and remember them in the room."""
        if batch:
            assert self.room is not None
            self.room.remember(time.time(), batch)
            self.broadcast(b"".join(batch), len(batch))
            batch.clear()

    def _command(self, text: str) -> None:
        if text.startswith("//"):  # an escaped slash: chat, not a command
            self._flush([self._prefix + protocol.sanitise(text[1:]).encode() + b"\n"])
            return
        assert self.nick is not None
        assert self.room is not None
        ctx = commands.Context(self.nick, self, self.room, self.server.registry)
        for effect in commands.run(text, ctx):
            self._apply(effect)

    def _apply(self, effect: commands.Effect) -> None:
        """Carry out one effect of a command."""
        if isinstance(effect, commands.Reply):
            self.deliver(protocol.notice(effect.text))
        elif isinstance(effect, commands.Send):
            if effect.member is None or effect.member is self:
                self.deliver(effect.data, effect.lines)
            else:
                self._relay(effect.member, effect.data, effect.lines)
        elif isinstance(effect, commands.ToRoom):
            if effect.remember:
                effect.room.remember(time.time(), [effect.data])
            self.broadcast(effect.data, room=effect.room)
        elif isinstance(effect, commands.Renamed):
            log.info("%s (%s) is now known as %s", self.nick, self.peer, effect.nick)
            self.nick = effect.nick
            self._prefix = f"{effect.nick}: ".encode()
        elif isinstance(effect, commands.Moved):
            self.room = effect.room
        elif isinstance(effect, commands.Close):
            self.cut_reason = effect.reason
            self.closing = True  # the reader stops; the writer sends what is queued

    def broadcast(self, payload: bytes, lines: int = 1, room: Room[Connection] | None = None) -> None:
        """Deliver to everyone else in ``room`` (by default this connection's).

        Recipients left more than half full are noted, for this reader to
        give them a moment before it reads more (``_let_recipients_drain``).
        Several readers woken in one loop turn may each add half an outbox
        before a recipient's writer runs, so one already full gets that
        moment first (at most ``HALF_FULL_WAIT_SECONDS`` per broadcast): only
        a client that really stopped reading is cut.
        """
        room = self.room if room is None else room
        if room is None:
            return
        half, limit = self.limit >> 1, self.limit
        deadline = 0.0  # set when the first full recipient is waited for
        members = room.members
        # A room this connection is not in (left, or moved out of) counts all.
        self.server.metrics.tally.deliveries += (len(members) - (self in members)) * lines
        # The hot path: _relay's steps inlined, a call per member costs.
        for member in members:
            if member is not self:
                if member.pending >= limit and not member.closing:
                    deadline = deadline or time.monotonic() + HALF_FULL_WAIT_SECONDS
                    member.give_time(max(0.0, deadline - time.monotonic()))
                member.deliver(payload, lines)
                if member.pending > half:
                    self._crowded.append(member)

    def _relay(self, member: Connection, payload: bytes, lines: int) -> None:
        """Deliver to one other client as ``broadcast`` does."""
        if member.pending >= self.limit and not member.closing:
            member.give_time(HALF_FULL_WAIT_SECONDS)
        member.deliver(payload, lines)
        if member.pending > self.limit >> 1:
            self._crowded.append(member)

    def _let_recipients_drain(self) -> None:
        """Let the writers woken by this chunk run before reading the next one.

        A client that keeps reading must never be cut just because another one
        sends a burst faster than one writer turn: if a recipient's outbox is
        past half full, give it a moment to drain.  One that does not read
        fills up and is cut as usual, so this never stalls on it for long.
        """
        gevent.sleep(0)  # run the writer greenlets this chunk woke
        crowded = self._crowded
        if not crowded:
            return
        half = self.limit >> 1
        deadline = time.monotonic() + HALF_FULL_WAIT_SECONDS
        for member in dict.fromkeys(crowded):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if member.pending > half and not member.closing:
                member.give_time(remaining)
        crowded.clear()

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
        while self.outbox is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait_drained(remaining)
        return True

    def _try_register(self, line: bytes) -> None:
        if not self._pass_gate(line):
            return
        server = self.server
        try:
            nick = protocol.validate_nick(line.decode("utf-8", "replace"))
            room = server.registry.add(nick, self)
        except ClientError as err:
            # One entry: the outbox bounds entries, ``pending`` counts lines.
            self.deliver(protocol.notice(str(err)) + protocol.NICK_PROMPT)
            return
        assert self._reg_timer is not None
        self._reg_timer.close()
        self._reg_timer = None  # about 300 bytes a connection, kept for nothing
        self.nick, self.room = nick, room
        self._prefix = f"{nick}: ".encode()
        log.info("%s registered as %s", self.peer, nick)
        n = len(server.registry)
        self.deliver(protocol.notice(f"Welcome, {nick}! {n} user{'s' if n != 1 else ''} online"))
        for effect in commands.history(room):
            self._apply(effect)
        self.broadcast(protocol.notice(f"{nick} joined"))

    # -- protections (flood pacing, idle clock, the registration gate) --------------

    def _receive(self, lines: list[bytes | None]) -> None:
        """Count a received chunk's lines and act on them, pacing a flooder.

        Over its rate, the reader sleeps until tokens refill instead of
        reading on: the lines already received wait in order, the sender's
        TCP window fills, and nothing is dropped.  Other clients are served
        by their own greenlets meanwhile.
        """
        self.heard = now = time.monotonic()
        metrics = self.server.metrics
        metrics.tally.lines_received += len(lines)
        if None in lines:
            metrics.too_long.inc(lines.count(None))
        bucket = self.bucket
        if bucket is None:
            self._handle(lines)
            return
        i, n = 0, len(lines)
        while i < n and not self.closing:
            if self.nick is None:  # registration lines are not paced; the gate caps them
                self._handle(lines[i : i + 1])
                i += 1
                continue
            granted = bucket.take(n - i, now)
            if granted:
                self._handle(lines[i : i + granted] if i or granted < n else lines)
                i += granted
            else:
                metrics.throttles.inc()
                gevent.sleep(bucket.delay(now))
            now = time.monotonic()

    def _pass_gate(self, line: bytes) -> bool:
        """Apply the registration gate; True if ``line`` is a nickname to try."""
        verdict = self.gate.check(line)
        if verdict.is_nick:
            return True
        if verdict.delay:
            gevent.sleep(verdict.delay)
        if verdict.reply:
            self.deliver(verdict.reply, verdict.reply.count(b"\n"))
        if verdict.close is not None:
            self.server.metrics.refused.labels(verdict.close).inc()
            self.cut_reason = verdict.close.replace("_", " ")
            self.closing = True  # the reader stops; teardown flushes the reply
        return False

    def finish(self, payload: bytes, reason: str) -> None:
        """Send ``payload`` as this client's last line and close, from any greenlet.

        Unlike ``cut``, what is queued (the payload included) is still sent.
        """
        if self.closing:
            return
        self.deliver(payload)
        self.closing = True  # nothing more is queued; teardown waits for the writer
        self.cut_reason = reason
        _shutdown(self.sock, socket.SHUT_RD)  # the reader's recv returns b""

    # -- the writer greenlet -------------------------------------------------------

    def _write_loop(self, outbox: Queue[bytes]) -> None:
        """Send everything queued, one write per turn, until the outbox is empty."""
        get_nowait, qsize = outbox.get_nowait, outbox.qsize
        send = self.sock.send
        half = self.limit // 2
        tally = self.server.metrics.tally
        monotonic = time.monotonic
        try:
            while n := qsize():
                data = get_nowait() if n == 1 else b"".join([get_nowait() for _ in range(n)])
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
                self.pending -= data.count(b"\n")
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
                self.server.writers.recycle(outbox)
            if self._drained is not None:
                self._drained.set()

    # -- teardown ------------------------------------------------------------------

    def _teardown(self) -> None:
        """Leave the registry, tell the room, flush or stop the writer, close."""
        self.closing = True
        server = self.server
        reason = self.cut_reason
        if self.nick is not None:
            room = server.registry.remove(self.nick)
            if room is not None and not server.stopping:
                text = f"{self.nick} left" + (f" ({reason})" if reason else "")
                # Through broadcast: many leaving at once must not cut the rest.
                self.broadcast(protocol.notice(text), room=room)
            log.info("%s (%s) disconnected%s", self.nick, self.peer, f": {reason}" if reason else "")
        else:
            log.info("%s disconnected before registering%s", self.peer, f": {reason}" if reason else "")
        if self._cut and reason == SLOW:  # not a /quit giving the same reason
            log.warning("%s (%s) cut: outbox full (%d lines)", self.nick, self.peer, self.pending)
            server.metrics.slow_consumers.inc()
            if self.outbox is None:  # no writer mid-line: the notice cannot split a line
                self._send_last_words(protocol.notice("disconnected: too slow"))
        elif self._cut:
            pass  # the outbox was dropped: only a writer stuck in sendall is left
        elif not self.wait_flushed(CLOSE_FLUSH_SECONDS):
            log.debug("%s: output not flushed in time", self.peer)
        self.sock.close()  # a writer still in sendall fails and ends
        self._crowded.clear()  # the leave notice may have noted recipients
        server.forget(self)

    def _send_last_words(self, payload: bytes) -> None:
        """Best effort, never blocking: the peer may have a full receive window."""
        try:
            self.sock.settimeout(0.0)
            self.sock.send(payload)
        except OSError:
            pass


# On the descriptor, so that a TLS socket keeps its TLS state (see tls.py).
_shutdown = shutdown_fd


def _unsent_bytes(sock: socket.socket) -> int | None:
    """Bytes queued in the kernel for the peer, unacknowledged ones included;
    None where the platform cannot tell (or the socket is closed)."""
    if _OUTQ is None:
        return None
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return None


def _format_peer(addr: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
