"""The hub through its bus seam: deliveries with no local sender.

Two servers in one process share a ``LocalBroker``: what a user says on
one reaches the room's members on the other through ``Hub.receive``,
which gives them the same fan-out and flow control as a local sender.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gevent_chat.core.config import Config
from gevent_chat.server import ChatServer
from gevent_chat.server.bus import LocalBroker
from tests.helpers import ChatClient, never_reading_client, send_burst_read_paced


@pytest.fixture
def pair() -> Iterator[tuple[ChatServer, ChatServer]]:
    broker = LocalBroker()
    servers = [ChatServer(Config(host="127.0.0.1", port=0, rate_limit=0), bus=broker.bus()) for _ in range(2)]
    for server in servers:
        server.start()
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop(timeout=1)


def test_lines_from_the_bus_reach_every_member_of_the_room_in_order(
    pair: tuple[ChatServer, ChatServer],
) -> None:
    a, b = pair
    alice, bob, carol = ChatClient(a.address), ChatClient(b.address), ChatClient(b.address)
    try:
        alice.register("alice")
        bob.register("bob")
        carol.register("carol")
        alice.expect(r"^\*\*\* bob joined #lobby$")  # a join on b is a notice on a
        alice.send_raw(b"".join(f"line {i}\n".encode() for i in range(300)))
        for reader in (bob, carol):
            got = [reader.expect(r"^alice: line (\d+)$").group(1) for _ in range(300)]
            assert got == [str(i) for i in range(300)]
        assert not any(line.startswith("alice:") for line in alice.lines), "echoed to the sender"
    finally:
        for client in (alice, bob, carol):
            client.close()


def test_lines_from_the_bus_enter_the_room_history(pair: tuple[ChatServer, ChatServer]) -> None:
    a, b = pair
    alice, bob = ChatClient(a.address), ChatClient(b.address)
    late = ChatClient(b.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.send("hello from a")
        bob.expect(r"^alice: hello from a$")
        late.register("late")
        late.expect(r"^\[\d\d:\d\d\] alice: hello from a$")
    finally:
        for client in (alice, bob, late):
            client.close()


@pytest.mark.timeout(30)  # 12 MB through two servers, read at about 4 MB/s
def test_a_reading_member_behind_the_bus_is_paced_not_cut(pair: tuple[ChatServer, ChatServer]) -> None:
    """A burst far bigger than the outbox, relayed through the bus to a
    client that reads slower than the sender writes: flow control holds
    the sender back, and the reader gets every line in order."""
    a, b = pair
    alice, bob = ChatClient(a.address), ChatClient(b.address)
    try:
        alice.register("alice")
        bob.register("bob")
        got = send_burst_read_paced(alice, bob, 3000)
        assert got == list(range(3000))
    finally:
        alice.close()
        bob.close()


def test_a_member_behind_the_bus_that_stops_reading_is_cut_and_others_go_on(
    pair: tuple[ChatServer, ChatServer],
) -> None:
    a, b = pair
    alice, bob = ChatClient(a.address), ChatClient(b.address)
    try:
        alice.register("alice")
        bob.register("bob")
        stuck = never_reading_client(b.address, "stuck")
        bob.expect(r"^\*\*\* stuck joined #lobby$")
        line = "x" * 4000
        for i in range(4000):  # at most 16 MB, far more than the stuck client's buffers and outbox
            alice.send(f"{i} {line}")
            bob.expect(rf"^alice: {i} ")
            if "*** stuck left (too slow)" in bob.lines:
                break
        assert "*** stuck left (too slow)" in bob.lines
        alice.expect(r"^\*\*\* stuck left \(too slow\)$")  # told across the bus
        stuck.close()
    finally:
        alice.close()
        bob.close()
