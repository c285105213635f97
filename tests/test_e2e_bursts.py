"""End-to-end: protocol points 9 and 10, slow consumers, bursts and ordering.

A reader that never reads is cut while everyone else loses nothing; bursts
bigger than an outbox reach readers that keep up; and each sender's lines
arrive in order with several senders at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import cast

import gevent
import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, never_reading_client, pair, wait_until

Connect = Callable[..., ChatClient]


def collect(
    client: ChatClient, prefix: str | tuple[str, ...], count: int, timeout: float = 20.0
) -> list[str]:
    """Read until ``count`` lines starting with ``prefix`` arrived; return those lines."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        line = client.read_line(max(0.001, deadline - time.monotonic()))
        assert not line.startswith("*** disconnected"), f"reader was cut: {line!r}"
        if line.startswith(prefix):
            got.append(line)
    return got


# -- 9, 10. slow consumers, bursts, ordering ----------------------------------------


Spawn = Callable[..., "gevent.Greenlet[..., object]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """``gevent.spawn`` whose greenlets are killed after the test (before its sockets close)."""
    started: list[gevent.Greenlet[..., object]] = []

    def start(func: Callable[..., object], *args: object) -> gevent.Greenlet[..., object]:
        greenlet = gevent.spawn(func, *args)
        started.append(greenlet)
        return greenlet

    yield start
    gevent.killall(started, timeout=2)


def _sender(
    spawn: Spawn, client: ChatClient, tag: str, count: int, batch: int, pad: int = 0
) -> gevent.Greenlet[..., object]:
    filler = "." * pad

    def run() -> None:
        for start in range(0, count, batch):
            stop = min(count, start + batch)
            client.send_raw("".join(f"{tag} {i} {filler}\n" for i in range(start, stop)).encode())

    return spawn(run)


def _numbers(lines: list[str]) -> list[int]:
    return [int(ln.split()[2]) for ln in lines]


# Moves about 15 MB through three connections (the slow one must overflow a 4 MB
# kernel send buffer first); allow for a loaded machine.
@pytest.mark.timeout(40)
def test_slow_consumer_is_cut_while_others_lose_nothing(
    make_server: Callable[..., ChatServer], caplog: pytest.LogCaptureFixture, spawn: Spawn
) -> None:
    caplog.set_level(logging.INFO, logger="gevent_chat")
    server = make_server(outbox_size=100)
    alice, bob = ChatClient(server.address, timeout=20), ChatClient(server.address, timeout=20)
    slow = never_reading_client(server.address, "slow")
    try:
        alice.register("alice")
        bob.register("bob")
        wait_until(lambda: len(server.registry) == 3, what="slow to register")
        n = 3000
        senders = [_sender(spawn, alice, "a", n, 50, pad=1200), _sender(spawn, bob, "b", n, 50, pad=1200)]
        got_bob = spawn(collect, bob, "alice: a ", n, 30)
        got_alice = spawn(collect, alice, "bob: b ", n, 30)
        gevent.joinall([*senders, got_bob, got_alice], raise_error=True, timeout=35)
        assert _numbers(cast("list[str]", got_bob.get(block=False))) == list(range(n))
        assert _numbers(cast("list[str]", got_alice.get(block=False))) == list(range(n))
        for client in (alice, bob):
            if "*** slow left (too slow)" not in client.lines:
                client.expect(r"^\*\*\* slow left \(too slow\)$")
            assert not any(re.match(r"^\*\*\* (alice|bob) left", ln) for ln in client.lines)
        wait_until(lambda: len(server.registry) == 2, what="slow to leave the registry")
        assert "cut: outbox full" in caplog.text
    finally:
        alice.close()
        bob.close()
        slow.close()


def test_fast_sender_burst_reaches_a_reader_that_keeps_up(connect: Connect) -> None:
    alice, bob = pair(connect)
    n = 5000
    alice.send_raw("".join(f"burst {i} xxxxxxxxxxxxxxxxxxxxxxxx\n" for i in range(n)).encode())
    got = collect(bob, "alice: burst ", n)
    assert [int(ln.split()[2]) for ln in got] == list(range(n))
    # bob was never cut: he can still talk, and alice saw no leave notice.
    bob.send("still connected")
    assert alice.read_line() == "bob: still connected"


def test_bursts_bigger_than_the_outbox_do_not_cut_readers(
    make_server: Callable[..., ChatServer], spawn: Spawn
) -> None:
    """One received chunk may hold more short lines than an outbox; readers must survive it."""
    server = make_server(outbox_size=100)
    names = ["alice", "carol"]
    clients = [ChatClient(server.address) for _ in names]
    bob = ChatClient(server.address)
    try:
        for client, name in zip(clients, names, strict=True):
            client.register(name)
        bob.register("bob")
        n = 2000
        senders = [_sender(spawn, c, name, n, n) for c, name in zip(clients, names, strict=True)]
        peers = zip(clients, reversed(names), strict=True)
        readers = [spawn(collect, c, f"{other}: ", n, 15) for c, other in peers]
        seen = collect(bob, ("alice: ", "carol: "), 2 * n, 15)
        gevent.joinall([*senders, *readers], raise_error=True, timeout=15)
        for name in names:
            assert _numbers([ln for ln in seen if ln.startswith(f"{name}: ")]) == list(range(n))
        assert len(server.registry) == 3
    finally:
        for client in (*clients, bob):
            client.close()


# Four clients each send and receive 1500 lines at once; allow for a loaded machine.
@pytest.mark.timeout(30)
def test_each_senders_lines_arrive_in_order_with_concurrent_senders(connect: Connect, spawn: Spawn) -> None:
    names = ["s0", "s1", "s2", "s3"]
    clients = [connect(name) for name in names]
    observer = connect("observer")
    for client in clients:
        client.expect(r"^\*\*\* observer joined #lobby$")
    n = 500
    batches = [1, 7, 50, 500]  # lines per sendall, from dribble to one burst
    senders = [_sender(spawn, c, name, n, b) for c, name, b in zip(clients, names, batches, strict=True)]
    readers = [spawn(collect, c, "s", n * (len(names) - 1), 20) for c in clients]
    seen = collect(observer, "s", n * len(names), 20)
    gevent.joinall([*senders, *readers], raise_error=True, timeout=25)
    for name in names:
        mine = [ln for ln in seen if ln.startswith(f"{name}: ")]
        assert _numbers(mine) == list(range(n)), name
    for name, reader in zip(names, readers, strict=True):
        others = cast("list[str]", reader.get(block=False))
        assert not any(ln.startswith(f"{name}: ") for ln in others), "echo"
        for other in names:
            if other != name:
                assert _numbers([ln for ln in others if ln.startswith(f"{other}: ")]) == list(range(n))
