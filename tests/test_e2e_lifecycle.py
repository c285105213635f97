"""End-to-end: how connections end, and what each ending leaves behind.

Each test here failed on an earlier version of the server; its docstring says
what went wrong.
"""

from __future__ import annotations

import socket as stdsocket
import time
from collections.abc import Callable

from gevent import socket

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient

Connect = Callable[..., ChatClient]


def _stuck_client(addr: tuple[str, int]) -> socket.socket:
    """A registered client with a tiny receive buffer that never reads."""
    sock = socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(addr)
    sock.sendall(b"stuck\n")
    return sock


def test_stop_closes_a_connection_whose_writer_is_stuck_within_the_timeout(
    make_server: Callable[..., ChatServer],
) -> None:
    """Teardown waited 2 s more to flush an outbox that stop() had already cut,
    so stop() returned with the connection still open."""
    server = make_server(outbox_size=100_000)
    stuck = _stuck_client(server.address)
    alice = ChatClient(server.address)
    try:
        alice.register("alice")
        line = b"x" * 1000 + b"\n"
        for _ in range(6):  # 6 MB: more than the kernel buffers hold for stuck
            alice.send_raw(line * 1000)
        alice.send("/ping sent")
        alice.expect(r"^\*\*\* pong sent$")
        started = time.monotonic()
        server.stop(timeout=0.2)
        elapsed = time.monotonic() - started
        assert not server.connections, "stop() returned with a connection still open"
        assert elapsed < 1.0, f"stop(timeout=0.2) took {elapsed:.2f} s"
    finally:
        alice.close()
        stuck.close()


def test_quit_with_reason_too_slow_still_says_bye(connect: Connect) -> None:
    """Teardown told a slow cut from a /quit by the reason text, so
    ``/quit too slow`` was handled as a cut: no ``*** bye``, and a false
    slow-consumer warning in the log."""
    alice, bob = connect("alice"), connect("bob")
    alice.expect(r"^\*\*\* bob joined$")
    bob.send("/quit too slow")
    assert "*** bye" in bob.read_until_closed()
    alice.expect(r"^\*\*\* bob left \(too slow\)$")
