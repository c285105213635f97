"""End-to-end: protocol points 11 to 13, leaving, shutdown and the log.

Resets and half-closes announced as leaving, nothing left behind once
everyone has gone, SIGTERM and SIGINT telling everyone before a bounded
shutdown, and a log of connects and disconnects that holds no message text
(the last two in a child process, ``spawn_server``).
"""

from __future__ import annotations

import re
import signal
import socket as stdsocket
import time
from collections.abc import Callable

import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, never_reading_client, pair, wait_until

Connect = Callable[..., ChatClient]


# -- 11. leaving --------------------------------------------------------------------


def test_abrupt_reset_is_announced_as_left(connect: Connect) -> None:
    alice, bob = pair(connect)
    bob.reset()
    alice.expect(r"^\*\*\* bob left$")


def test_registry_and_connections_empty_after_everyone_leaves(server: ChatServer, connect: Connect) -> None:
    alice, bob = pair(connect)
    carol = connect("carol")
    lurker = connect()
    lurker.expect_prompt()
    wait_until(lambda: len(server.connections) == 4, what="4 connections")
    alice.close()
    bob.reset()
    carol.send_raw(b"parting words")
    carol.sock.shutdown(stdsocket.SHUT_WR)
    lurker.reset()
    wait_until(
        lambda: len(server.registry) == 0 and not server.connections and not server.registry.rooms(),
        what="registry and connections to empty",
    )


# -- 12. graceful shutdown ----------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_tells_everyone_and_exits_zero(
    spawn_server: Callable[..., ServerProcess], signum: signal.Signals
) -> None:
    server = spawn_server("--shutdown-timeout", "2")
    addr = server.wait_listening()
    alice, bob = ChatClient(addr), ChatClient(addr)
    lurker = ChatClient(addr)
    try:
        alice.register("alice")
        bob.register("bob")
        lurker.expect_prompt()
        server.proc.send_signal(signum)
        for client in (alice, bob):
            client.expect(r"^\*\*\* server shutting down$")
            client.read_until_closed()
        assert "*** server shutting down" in lurker.read_until_closed()
        assert server.wait(timeout=8) == 0
    finally:
        for client in (alice, bob, lurker):
            client.close()


# Pushes 8 MB at a client that never reads, then waits for a bounded shutdown.
@pytest.mark.timeout(30)
def test_shutdown_is_bounded_with_a_client_that_never_reads(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server("--shutdown-timeout", "1", "--outbox-size", "100000")
    addr = server.wait_listening()
    slow = never_reading_client(addr, "slow")
    alice = ChatClient(addr)
    try:
        alice.register("alice")
        line = b"x" * 1000 + b"\n"
        for _ in range(8):  # 8 MB: more than the kernel buffers hold for slow
            alice.send_raw(line * 1000)
        alice.send("done")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        alice.expect(r"^\*\*\* server shutting down$")
        assert server.wait(timeout=15) == 0
        # One second to flush, then at most a second more to close everything.
        assert time.monotonic() - started < 8, "shutdown was not bounded by --shutdown-timeout"
    finally:
        alice.close()
        slow.close()


# -- 13. logging --------------------------------------------------------------------


@pytest.mark.parametrize("level", ["info", "debug"])
def test_log_has_connects_and_disconnects_but_no_message_text(
    spawn_server: Callable[..., ServerProcess], level: str
) -> None:
    server = spawn_server("--log-level", level)
    addr = server.wait_listening()
    alice, bob = ChatClient(addr), ChatClient(addr)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        host, port = alice.sock.getsockname()[:2]
        alice_peer = f"{host}:{port}"
        alice.send("secret-words-0451")
        alice.send_raw(b"unterminated-secret-9876")
        bob.expect("secret-words-0451")
        alice.close()
        bob.expect("alice left")
        wait_until(lambda: "disconnected" in server.log_text(), what="disconnect log line")
    finally:
        alice.close()
        bob.close()
    log = server.log_text()
    assert re.search(rf"connect from {re.escape(alice_peer)}\b", log), log
    assert re.search(rf"alice .*{re.escape(alice_peer)}.*disconnected", log), log
    assert "secret-words-0451" not in log
    assert "unterminated-secret-9876" not in log
