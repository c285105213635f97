"""The sending half of the Redis bus: one batch per room per loop turn, pipelined.

SHELL.  ``publish`` never waits: it appends to a bounded FIFO and wakes the
publisher greenlet.  The wake-up runs after every greenlet this loop turn
woke (gevent runs its callbacks last, as Redis runs ``beforeSleep``), so
the greenlet finds everything said in the turn and coalesces it: what
follows itself in one room, with the same ``remember``, becomes one batch
(payloads concatenated, line counts added).  Each batch is one EVALSHA of
``scripts.PUBLISH`` (one Stream entry, one message to each other node that
listens to the room); the batches of one turn go out in one write on the
publisher's own ``RespConnection`` (one per master of a Redis Cluster, each
room to the master of its slot).

Replies are read without waiting for them: before the next write (one
``recv`` finds them there), when the subscriber needs a room's offset
(``settle``), or on a timer (``CONFIRM_AFTER``) when nothing else is said,
so a reply never wakes the node by itself.  Each tells the node the offset
its batch took (``on_stored``): Redis sends a node none of its own batches.
If the last write is still unanswered when the next batch is due (Redis is
busy), the publisher waits for it, and what is said meanwhile joins the next
batch: batches grow with the load.  ``linger`` (``--redis-linger-ms``) makes
the first line of a burst wait that long for more: fewer, larger batches at
a low rate, for that much more latency across servers.

A batch keeps the sequence number it was given when it was formed: if a
write or its reply is lost, it is sent again marked as a retry, and the
script skips it if it was stored (see ``scripts``).  While Redis is down the
FIFO keeps up to ``buffer_size`` publishes (the oldest go first, counted in
``metrics.overflows``).  Payloads are opaque bytes here.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import gevent
import redis
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from ...core import wire
from ...core.protocol import name_key
from . import scripts
from .keys import Keys
from .link import FAILURES, Link
from .resp import Command, ReplyError, RespConnection, pack
from .topology import Address

if TYPE_CHECKING:
    from .bus import BusMetrics

__all__ = ["MAX_BATCH_BYTES", "PUBLISH_BATCH", "Batch", "Publisher"]

log = logging.getLogger("gevent_chat.redis")

#: Batches sent per write at most.
PUBLISH_BATCH = 256
#: Rooms whose key names are kept made.
MAX_ROOM_KEYS = 4096
#: How often a publisher with nothing new to send reads the replies it has not read.
CONFIRM_AFTER = 0.05
#: A coalesced batch stops growing at this many payload bytes.
MAX_BATCH_BYTES = 256 * 1024

#: Error replies of a Redis Cluster whose slots are moving or whose master failed:
#: the batch was not run; it is sent again once the link is back.
IN_FLUX = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "LOADING", "MASTERDOWN")

#: SHA1 of the publish script, as EVALSHA names it.
PUBLISH_SHA = hashlib.sha1(scripts.PUBLISH.encode()).hexdigest()  # Redis names a script by its SHA1


@dataclass(slots=True)
class Batch:
    """Lines for one room, numbered, ready to be stored and published."""

    room: str
    seq: int
    header: bytes
    payload: bytes
    lines: int
    retry: bool = False  # sent before, and maybe stored: the script checks


class _RoomKeys(NamedTuple):
    folded: str
    meta: str
    stream: str
    listeners: str
    channels: str  # the prefix of its listeners' channels


class Publisher:
    """The FIFO, the greenlet that empties it, and the connections it uses."""

    def __init__(
        self,
        link: Link,
        keys: Keys,
        node: str,
        metrics: BusMetrics,
        *,
        stream_size: int,
        buffer_size: int,
        linger: float = 0.0,
        clock: Callable[[], float] = time.time,
        before_send: Callable[[set[str]], None],
        on_foreign: Callable[[str, object, int], None],
    ) -> None:
        self.link, self.keys, self.node, self.metrics = link, keys, node, metrics
        self.stream_size = stream_size
        self.buffer_size = buffer_size
        self.linger = linger
        self.clock = clock
        self.before_send = before_send  # raises FAILURES: the rooms about to be published in
        self.on_foreign = on_foreign
        #: Called with (room, epoch, offset, seq) for each batch Redis confirmed stored.
        self.on_stored: Callable[[str, str, int, int], None] | None = None
        #: Said, not yet in a batch: (room, payload, lines, remember).
        self.pending: deque[tuple[str, bytes, int, bool]] = deque()
        #: Formed (or to be sent again), not written yet, in order.
        self.unacked: list[Batch] = []
        #: Written, per connection, in order; their replies not read yet.
        self.inflight: dict[Address | None, deque[Batch]] = {}
        self._redo: list[Batch] = []  # refused for want of the script: sent again once it is loaded
        self._noscript: set[Address | None] = set()
        self._error: BaseException | None = None  # found by ``settle`` in another greenlet
        self._flushing = False
        self._confirm_due = False  # replies have waited a tick: read them even if they make us wait
        self._reading = BoundedSemaphore()  # replies are read by one greenlet at a time
        self._seq = 0
        self._sends = 0
        self._wake = Event()
        self._conns: dict[Address | None, RespConnection] = {}  # per master (None: the one Redis)
        self._room_keys: dict[str, _RoomKeys] = {}

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent or confirmed."""
        return not self.pending and not self.unacked and not self._redo and not self._unconfirmed()

    def _unconfirmed(self) -> int:
        return sum(len(queue) for queue in self.inflight.values())

    def publish(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        """Queue complete lines for ``room``; never blocks."""
        pending = self.pending
        pending.append((room, payload, lines, remember))
        if len(pending) > self.buffer_size:
            pending.popleft()
            if not self.metrics.overflows:
                log.warning("Redis outage buffer full: dropping the oldest lines for other servers")
            self.metrics.overflows += 1
        self._wake.set()

    # -- the greenlet ------------------------------------------------------------------

    def run(self) -> None:
        # One timer for the greenlet's life (a timed wait per turn would make one each time).
        ticker = gevent.get_hub().loop.timer(CONFIRM_AFTER, CONFIRM_AFTER, ref=False)
        ticker.start(self._tick)
        try:
            self._run()
        finally:
            ticker.stop()
            ticker.close()

    def _tick(self) -> None:
        if self._unconfirmed():
            self._confirm_due = True
            self._wake.set()

    def _run(self) -> None:
        while True:
            try:
                self._check()
                if not self.pending and not self.unacked:
                    if self._unconfirmed() and (self._confirm_due or self._flushing):
                        self._confirm_due = False
                        self._confirm(block=True)  # nothing new to send: read the replies now
                        continue
                    self._wake.clear()
                    self._wake.wait()
                    continue
                self.link.up.wait()
                if self.linger and not self.unacked:
                    gevent.sleep(self.linger)  # lines said meanwhile join the batch
                # Replies that came meanwhile cost one ``recv`` and no wait.  If the
                # last write is still unanswered (Redis is busy), wait for it: what
                # is said meanwhile joins the next batch, so batches grow with the load.
                self._confirm(block=False)
                if self._unconfirmed():
                    self._confirm(block=True)
                self._check()
                self._form()
                batches = self.unacked[:PUBLISH_BATCH]
                self.send(batches)
                del self.unacked[: len(batches)]
            except FAILURES as exc:
                self._failed(exc)

    def _check(self) -> None:
        """Act on what ``settle`` found: raise its failure; send again what lacked the script."""
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc
        if self._noscript:
            with self._reading:
                for where in self._noscript:
                    queue, conn = self.inflight.get(where), self._conns.get(where)
                    if conn is None:
                        continue
                    if queue:  # everything after the refused batch was sent without the script too
                        for reply in [conn.read() for _ in queue]:
                            self._stored(queue.popleft(), reply, where)
                    conn.call("SCRIPT", "LOAD", scripts.PUBLISH)
                self._noscript.clear()
            self.unacked = sorted(self._redo + self.unacked, key=_by_seq)
            self._redo = []

    def _failed(self, exc: BaseException) -> None:
        """Everything not confirmed is sent again, in order, as retries, once the link is back."""
        again = self._redo + self.unacked
        for queue in self.inflight.values():
            again.extend(queue)
        for batch in again:
            batch.retry = True
        self.unacked = sorted(again, key=_by_seq)
        self.inflight, self._redo, self._error = {}, [], None
        self._noscript.clear()
        self.drop()
        self.link.failed(exc)

    def _form(self) -> None:
        """Turn what is pending into numbered batches, one per run of one room."""
        pending, formed = self.pending, self.unacked
        if not pending or len(formed) >= PUBLISH_BATCH:
            return
        when_ms = int(self.clock() * 1000)
        node = self.node
        while pending and len(formed) < PUBLISH_BATCH:
            room, payload, lines, remember = pending.popleft()
            parts = [payload]
            size = len(payload)
            while pending:
                nroom, npayload, nlines, nremember = pending[0]
                if nroom != room or nremember != remember or size + len(npayload) > MAX_BATCH_BYTES:
                    break
                pending.popleft()
                parts.append(npayload)
                size += len(npayload)
                lines += nlines
            self._seq += 1
            header = wire.encode_header(node, self._seq, when_ms, lines, remember)
            payload = parts[0] if len(parts) == 1 else b"".join(parts)
            formed.append(Batch(room, self._seq, header, payload, lines))

    def send(self, batches: list[Batch]) -> None:
        """Write ``batches``, one write per master; their replies are read later.  Raises ``FAILURES``."""
        if not batches:
            return
        self.before_send({batch.room for batch in batches})
        router = self.link.router
        groups: dict[Address | None, list[Batch]] = {}
        for batch in batches:
            where = None if router is None else router.address(self._keys_of(batch.room).meta)
            groups.setdefault(where, []).append(batch)
        # The epoch of a room that has none yet: new on every send (node id and a
        # count), so a room Redis lost never gets an epoch it had back.
        self._sends += 1
        epoch = f"{self.node}-{self._sends}"
        for where, group in groups.items():
            self._write(where, group, epoch)

    def settle(self) -> None:
        """Read the replies already received (never waits): the rooms learn their offsets.

        The subscriber calls this before it takes a message past a room's next
        offset for a gap: Redis wrote the reply to this node's earlier batch
        before the message that followed it, so the reply is here already.
        """
        try:
            self._confirm(block=False)
        except FAILURES as exc:
            if self._error is None:
                self._error = exc
            self._wake.set()

    def _confirm(self, *, block: bool) -> None:
        """Read the replies that came (``block``: every one outstanding) and act on each."""
        with self._reading:
            for where, queue in self.inflight.items():
                conn = self._conns.get(where)
                if not queue or conn is None:
                    continue
                replies = [conn.read() for _ in queue] if block else conn.read_ready()
                for reply in replies:
                    if not queue:
                        break
                    self._stored(queue.popleft(), reply, where)

    def _stored(self, batch: Batch, reply: object, where: Address | None) -> None:
        """Act on Redis's reply to ``batch``."""
        if isinstance(reply, ReplyError):
            text = str(reply)
            if text.startswith("NOSCRIPT"):
                # Redis restarted (or its scripts were flushed): load it and send
                # again, as a retry: whatever ran is skipped.
                self._redo.append(batch)
                self._noscript.add(where)
                self._wake.set()
            elif text.startswith(IN_FLUX):
                self._redo.append(batch)
                if self._error is None:
                    self._error = redis.ConnectionError(f"Redis Cluster in flux: {reply}")
                self._wake.set()
            else:
                log.error("Redis refused a batch for room %s: %s", batch.room, reply)
                self.metrics.publish_errors += 1
            return
        self.metrics.publishes += 1
        self.metrics.published_lines += batch.lines
        if not isinstance(reply, list) or len(reply) < 3:
            return
        offset, epoch, foreign = reply[0], reply[1], reply[2]
        if foreign:
            removed = "entries past the room's offsets, removed"
            self.on_foreign(self.keys.stream(batch.room), removed, int(foreign))
        if offset and self.on_stored is not None and isinstance(epoch, bytes):
            folded = self._keys_of(batch.room).folded
            self.on_stored(folded, epoch.decode("ascii", "replace"), int(offset), batch.seq)

    def _write(self, where: Address | None, batches: list[Batch], epoch: str) -> None:
        """Send one EVALSHA per batch to the master at ``where``, without waiting."""
        node, maxlen = self.node, self.stream_size
        publish = "SPUBLISH" if self.link.sharded else "PUBLISH"
        commands: list[Command] = []
        for b in batches:
            k = self._keys_of(b.room)
            retry = 1 if b.retry else 0
            args = (k.channels, b.header, b.payload, maxlen, epoch, node, b.seq, retry, publish)
            commands.append(("EVALSHA", PUBLISH_SHA, 3, k.meta, k.stream, k.listeners, *args))
        conn = self._conns.get(where)
        if conn is None:
            conn = self._conns[where] = RespConnection(self.link.new_connection(where), self.link.timeout)
        data = pack(commands)
        for b in batches:  # from here on, a failure leaves them maybe stored
            b.retry = True
        # Awaiting replies before the write: a write that waits for room in the
        # socket lets ``settle`` read the replies to its first commands meanwhile.
        self.inflight.setdefault(where, deque()).extend(batches)
        conn.write(data)

    def _keys_of(self, room: str) -> _RoomKeys:
        """The names ``room``'s batches need, made once (folding a name takes ICU's time)."""
        found = self._room_keys.get(room)
        if found is None:
            if len(self._room_keys) >= MAX_ROOM_KEYS:
                self._room_keys.clear()
            keys = self.keys
            found = _RoomKeys(
                name_key(room),
                keys.meta(room),
                keys.stream(room),
                keys.listeners(room),
                keys.channel(room, ""),
            )
            self._room_keys[room] = found
        return found

    def drop(self) -> None:
        """Close the connections (a failure, or the end); the next send opens others."""
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            conn.close()

    def flush(self, timeout: float) -> None:
        """Give the greenlet up to ``timeout`` s to send what waits (before closing)."""
        deadline = time.monotonic() + timeout
        self._flushing = True
        self._wake.set()
        while not self.idle and self.link.is_up and time.monotonic() < deadline:
            gevent.sleep(0.01)


def _by_seq(batch: Batch) -> int:
    return batch.seq
