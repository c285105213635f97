"""Churn: thousands of connect/register/disconnect cycles leak nothing.

In-process, so the registry, the connection limits and the greenlets of the
server can be counted directly: after every cycle has ended, all of them are
back where they started.
"""

from __future__ import annotations

import gc
import socket as stdsocket
import struct
from collections.abc import Callable

import gevent
import greenlet
import pytest
from gevent import socket

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, wait_until

WORKERS = 25
CYCLES_PER_WORKER = 80  # 2000 cycles in all


def _root(g: greenlet.greenlet) -> greenlet.greenlet:
    while g.parent is not None:
        g = g.parent
    return g


def live_greenlets() -> int:
    """Greenlets of this thread that are not dead (gevent's resolver threads excluded)."""
    gc.collect()
    main = _root(greenlet.getcurrent())
    return sum(
        1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead and _root(o) is main
    )


class _Client(ChatClient):
    """``ChatClient`` without ``create_connection``, whose resolver threads come and go."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.timeout = 5.0
        self.buf = b""
        self.lines: list[str] = []
        self.sock = socket.socket()
        self.sock.settimeout(5.0)
        self.sock.connect(addr)


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _cycle(addr: tuple[str, int], worker: int, n: int) -> None:
    """One client life, in one of five ways of ending."""
    client = _Client(addr)
    sock = client.sock
    kind = n % 5
    try:
        if kind == 0:  # registers, says something, leaves politely
            client.register(f"w{worker}n{n}")
            client.send("hello")
            client.close()
        elif kind == 1:  # registers, then resets in the middle of a line
            client.register(f"w{worker}n{n}")
            client.send_raw(b"half a li")
            _reset(sock)
        elif kind == 2:  # resets in the middle of its nickname
            client.expect_prompt()
            client.send_raw(b"w%d" % worker)
            _reset(sock)
        elif kind == 3:  # registers and closes without reading the welcome
            client.send(f"w{worker}n{n}")
            client.close()
        else:  # connects and vanishes at once
            _reset(sock)
    finally:
        sock.close()


@pytest.mark.timeout(60)  # 2000 cycles; about 5 s on an idle 2-core machine
def test_connect_register_disconnect_cycles_leave_nothing_behind(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(rate_limit=10)
    observer = _Client(server.address)
    observer.register("observer")
    # Finished writers are parked for reuse (``WriterPool``): alive, but bounded
    # and holding no connection, so they are not counted.
    parked = server.writers._idle

    def busy_greenlets() -> int:
        return live_greenlets() - len(parked)

    baseline = busy_greenlets()
    reader = gevent.spawn(_drain, observer)

    def worker(w: int) -> None:
        for n in range(CYCLES_PER_WORKER):
            _cycle(server.address, w, n)

    workers = [gevent.spawn(worker, w) for w in range(WORKERS)]
    gevent.joinall(workers, raise_error=True)
    wait_until(lambda: len(server.registry) == 1, timeout=10, what="only the observer registered")
    wait_until(lambda: len(server.connections) == 1, timeout=10, what="only the observer connected")
    assert server.limits.total == 1
    reader.kill()
    assert observer.lines, "the observer saw none of the churn"
    wait_until(lambda: busy_greenlets() <= baseline, timeout=10, what="greenlets back to the baseline")
    assert len(parked) <= server.writers.max_idle
    observer.close()
    wait_until(lambda: len(server.registry) == 0, what="the registry to empty")
    wait_until(lambda: server.limits.total == 0, what="the connection count to reach 0")


def _drain(client: ChatClient) -> None:
    while True:
        client.read_line(timeout=60)
