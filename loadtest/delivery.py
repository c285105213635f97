"""What one delivery costs in Python, beyond the ``send`` itself.

In a quiet chat or a big room nothing batches: every line costs one
``send`` per recipient, and what the server adds on top of that syscall is
what this measures.  It builds the real pieces (``Hub``, ``Room``,
``Outbox``, ``WriterPool``) over Unix socketpairs in this process, then
times, per delivery:

- ``bare``: a loop of ``send`` on the raw sockets, the floor;
- ``hub``: ``Hub.broadcast`` of a chat event to the room (rendered once
  by the line renderer every recipient shares) plus the end-of-turn send;
- ``queue``: ``Hub.broadcast`` alone (nothing is sent).

``hub - bare`` is the Python cost of a delivery.  With ``--per-turn N`` each
recipient gets N lines per loop turn, as under load, where they leave in one
``send``.  Pin it to one core for steadier figures::

    taskset -c 0 .venv/bin/python -m loadtest.delivery --recipients 100 --repeat 3
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Callable, Sequence

from gevent import socket as gsocket

from gevent_chat.core.events import Said
from gevent_chat.core.lines import RENDERER
from gevent_chat.core.registry import Registry
from gevent_chat.core.rooms import Room
from gevent_chat.server.bus import LocalBus
from gevent_chat.server.hub import Hub
from gevent_chat.server.member import Member
from gevent_chat.server.metrics import Tally
from gevent_chat.server.outbox import Outbox
from gevent_chat.server.writers import WriterPool

EVENT = Said("bench", "alice", (b"x" * 33,))
PAYLOAD = b"alice: " + b"x" * 33 + b"\n"
#: Far more lines than one round queues, so no recipient is ever cut.
LIMIT = 1 << 20


class BenchMember(Outbox):
    """An outbox with the line renderer: all the hub's fan-out reads of a member."""

    __slots__ = ("renderer",)


class Bench:
    """``recipients`` outboxes on socketpairs, in one room of one hub."""

    def __init__(self, recipients: int, per_turn: int) -> None:
        self.per_turn = per_turn
        self.pairs = [gsocket.socketpair() for _ in range(recipients)]
        for _ours, theirs in self.pairs:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.tally = Tally()
        self.pool = WriterPool(LIMIT)
        self.outboxes = [BenchMember(ours, "bench", LIMIT, self.pool, self.tally) for ours, _ in self.pairs]
        for outbox in self.outboxes:
            outbox.renderer = RENDERER
        self.hub = Hub(Registry[Member](), LIMIT, self.tally, LocalBus())
        # Outboxes stand in for members: the hub's fan-out reads only their Outbox side and renderer.
        self.room: Room[Member] = Room("bench", members=tuple(self.outboxes))  # type: ignore[arg-type]

    def drain(self) -> int:
        """Empty every receiving side, so no send ever finds a full socket; bytes read."""
        received = 0
        for _ours, theirs in self.pairs:
            raw = theirs._sock  # type: ignore[attr-defined]
            try:
                while chunk := raw.recv(1 << 20):
                    received += len(chunk)
            except BlockingIOError:
                pass
        return received

    def bare(self) -> None:
        raws = [ours._sock for ours, _ in self.pairs]  # type: ignore[attr-defined]
        data = PAYLOAD * self.per_turn
        for raw in raws:
            raw.send(data)

    def hub_turn(self) -> None:
        crowded: list[Outbox] = []
        for _ in range(self.per_turn):
            self.hub.broadcast(self.room, EVENT, 0.0, crowded)
        self.pool._send_due()  # what the loop runs at the end of the turn

    def queue_only(self) -> None:
        crowded: list[Outbox] = []
        for _ in range(self.per_turn):
            self.hub.broadcast(self.room, EVENT, 0.0, crowded)
        for outbox in self.pool.due:  # undo without sending
            outbox._direct = None
            outbox.pending = 0
        self.pool.due.clear()

    def time(self, turn: Callable[[], None], rounds: int, sends: bool = True) -> float:
        """Microseconds per delivery of ``rounds`` turns.

        Every byte a sending turn should have delivered is counted at the
        receiving ends: a figure for deliveries that did not happen would
        mean nothing.
        """
        self.drain()
        received = 0
        start = time.perf_counter()
        for i in range(rounds):
            turn()
            if i % 32 == 31:
                received += self.drain()
        elapsed = time.perf_counter() - start
        received += self.drain()
        expected = rounds * len(self.outboxes) * self.per_turn * len(PAYLOAD) if sends else 0
        if received != expected:
            raise RuntimeError(f"{turn.__name__}: {received} bytes arrived, {expected} were sent")
        return elapsed / rounds / len(self.outboxes) / self.per_turn * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.delivery", description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100, help="room members (default 100)")
    parser.add_argument("--per-turn", type=int, default=1, help="lines per recipient per turn (default 1)")
    parser.add_argument("--rounds", type=int, default=2000, help="turns per measurement (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements; the median is shown (default 3)")
    args = parser.parse_args(argv)
    bench = Bench(args.recipients, args.per_turn)
    cases = {"bare": bench.bare, "hub": bench.hub_turn, "queue": bench.queue_only}
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, turn in cases.items():
            runs[name].append(bench.time(turn, args.rounds, sends=name != "queue"))
    median = {name: statistics.median(values) for name, values in runs.items()}
    shape = f"{args.recipients} recipients, {args.per_turn} line(s) each per turn"
    print(f"{shape}; us per delivery, median of {args.repeat}")
    for name, values in runs.items():
        shown = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:>6} {median[name]:.3f}  [{shown}]")
    print(f"python cost of a delivery (hub - bare): {median['hub'] - median['bare']:.3f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
