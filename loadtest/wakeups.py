"""What one wake-up of a process costs on this machine, in CPU time.

``python -m loadtest.wakeups [--count 3000] [--gap-ms 0.6]``

Below a few thousand lines a second, a chat server's CPU goes less to the
lines than to waking up for them: each process that sleeps in ``epoll_wait``
and is woken pays the kernel's (and a virtual machine's) price for it, and
gevent's for its loop turn.  Several processes sharing Redis multiply the
wake-ups per line (a line crosses two sockets and wakes Redis and every other
node), so this price, not the bus's Python, bounds the Redis hop at low rates
(see ``docs/redis-hop.md``).  Measured, each ``--count`` times:

* ``epoll``: ``select.epoll().poll(gap)``, a process that sleeps and wakes;
* ``gevent_timer``: gevent's loop woken by one repeating timer;
* ``gevent_sleep``: ``gevent.sleep(gap)``, a greenlet that sleeps (a timer
  made and a switch to the hub and back each time);
* ``ping_pong``: two processes passing one byte back and forth over a Unix
  socket pair: CPU per round trip of each side (one send, one wake-up).

One JSON line, CPU microseconds per wake-up (or round trip) for each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import time
from collections.abc import Callable

import gevent
from gevent.event import Event


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _per_call(count: int, run: Callable[[], None]) -> float:
    """CPU microseconds per wake-up of ``run``, which wakes ``count`` times."""
    before = _cpu()
    run()
    return round((_cpu() - before) / count * 1e6, 1)


def _epoll(count: int, gap: float) -> None:
    poller = select.epoll()
    try:
        for _ in range(count):
            poller.poll(gap)
    finally:
        poller.close()


def _gevent_timer(count: int, gap: float) -> None:
    done, seen = Event(), [0]
    timer = gevent.get_hub().loop.timer(gap, gap)

    def tick() -> None:
        seen[0] += 1
        if seen[0] >= count:
            timer.stop()
            done.set()

    timer.start(tick)
    done.wait()
    timer.close()


def _gevent_sleep(count: int, gap: float) -> None:
    for _ in range(count):
        gevent.sleep(gap)


def _ping_pong(count: int) -> tuple[float, float]:
    """CPU microseconds per round trip of this process and of its child."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child answers every byte, then leaves
        mine.close()
        for _ in range(count):
            theirs.recv(1)
            theirs.send(b"y")
        os._exit(0)
    theirs.close()
    before, child_before = _cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(count):
        mine.send(b"x")
        mine.recv(1)
    os.waitpid(pid, 0)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine.close()
    child_cpu = (child.ru_utime + child.ru_stime) - (child_before.ru_utime + child_before.ru_stime)
    return round((_cpu() - before) / count * 1e6, 1), round(child_cpu / count * 1e6, 1)


def measure(count: int, gap: float) -> dict[str, object]:
    started = time.monotonic()
    parent, child = _ping_pong(count)
    return {
        "count": count,
        "gap_ms": gap * 1000,
        "epoll_us": _per_call(count, lambda: _epoll(count, gap)),
        "gevent_timer_us": _per_call(count, lambda: _gevent_timer(count, gap)),
        "gevent_sleep_us": _per_call(count, lambda: _gevent_sleep(count, gap)),
        "ping_pong_us": {"parent": parent, "child": child},
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.wakeups", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=3000, help="wake-ups per measure (default 3000)")
    p.add_argument("--gap-ms", type=float, default=0.6, help="sleep per wake-up, ms (default 0.6)")
    a = p.parse_args(argv)
    if a.count < 1 or a.gap_ms < 0:
        p.error("--count must be at least 1 and --gap-ms not negative")
    print(json.dumps(measure(a.count, a.gap_ms / 1000)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
