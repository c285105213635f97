"""End-to-end: how connections end, and what each ending leaves behind.

Each test here failed on an earlier version of the server; its docstring says
what went wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gevent_chat.server import ChatServer
from gevent_chat.server.outbox import Outbox
from tests.helpers import ChatClient, never_reading_client, send_burst_read_paced, wait_until

Connect = Callable[..., ChatClient]


def test_stop_closes_a_connection_whose_writer_is_stuck_within_the_timeout(
    make_server: Callable[..., ChatServer],
) -> None:
    """Teardown waited 2 s more to flush an outbox that stop() had already cut,
    so stop() returned with the connection still open."""
    server = make_server(outbox_size=100_000)
    stuck = never_reading_client(server.address, "stuck")
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
    alice.expect(r"^\*\*\* bob joined #lobby$")
    bob.send("/quit too slow")
    assert "*** bye" in bob.read_until_closed()
    alice.expect(r"^\*\*\* bob left \(too slow\)$")


def _numbered(client: ChatClient, prefix: str, count: int) -> list[int]:
    """Read until ``count`` lines start with ``prefix``; the number after it in each."""
    got: list[int] = []
    while len(got) < count:
        line = client.read_line()
        assert not line.startswith("*** disconnected"), f"cut: {line!r}"
        if line.startswith(prefix):
            got.append(int(line[len(prefix) :].split()[0]))
    return got


def test_burst_of_commands_does_not_cut_the_sender_who_reads_replies(connect: Connect) -> None:
    """Only chat lines counted towards a reader's yields: thousands of
    ``/ping`` in one segment filled the sender's own outbox before its
    writer ran, and it was cut as too slow while reading every reply."""
    alice = connect("alice")
    n = 3000  # three outboxes' worth
    alice.send_raw("".join(f"/ping {i}\n" for i in range(n)).encode())
    assert _numbered(alice, "*** pong ", n) == list(range(n))


def test_burst_of_me_lines_does_not_cut_a_room_that_reads(connect: Connect) -> None:
    """As above, for the room: a burst of ``/me`` cut every reader in it."""
    alice, bob = connect("alice"), connect("bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    n = 3000
    alice.send_raw("".join(f"/me {i}\n" for i in range(n)).encode())
    assert _numbered(bob, "* alice ", n) == list(range(n))
    bob.send("still here")
    assert alice.read_line() == "bob: still here"


def test_joining_away_from_a_room_left_empty_keeps_the_connection(connect: Connect) -> None:
    """Room notices go through broadcast, whose delivery count must not
    assume the sender is in the room: -1 for a room just emptied is refused
    by the counter with an exception that would drop the connection."""
    alice = connect("alice")
    alice.send("/join den")
    alice.expect(r"^\*\*\* you joined #den$")
    alice.send("/ping still-here")
    alice.expect(r"^\*\*\* pong still-here$")


def test_burst_of_refused_nicknames_is_answered_and_registration_still_works(
    make_server: Callable[..., ChatServer],
) -> None:
    """A refusal and the prompt after it were two outbox entries but one
    line, and the outbox bounds entries: a burst of bad nicknames sent
    before the first prompt was read overflowed the queue itself
    (``queue.Full``), which was logged as a server error and closed the
    connection.  (With the default gate, an outbox under about 100 entries
    was enough.)"""
    server = make_server(max_unregistered_lines=0, outbox_size=40)
    client = ChatClient(server.address)
    try:
        n = 300
        client.send_raw(b"!\n" * n)
        refused = 0
        while refused < n:
            line = client.read_line()
            assert not line.startswith("*** disconnected"), f"cut: {line!r}"
            refused += "invalid" in line
        client.send("alice")
        client.expect(r"\*\*\* Welcome, alice!")  # after the last prompt, on its line
    finally:
        client.close()


def test_simultaneous_bursts_from_several_senders_do_not_cut_a_reader(
    make_server: Callable[..., ChatServer],
) -> None:
    """Each sender's burst stayed within half an outbox, but three senders
    woken in the same loop turn each added theirs before the reader's
    writer ran, and the third cut the reader as too slow."""
    server = make_server(outbox_size=1000)
    names = ["a", "b", "c"]
    senders = [ChatClient(server.address) for _ in names]
    reader = ChatClient(server.address)
    try:
        for client, name in zip(senders, names, strict=True):
            client.register(name)
        reader.register("r")
        n = 600
        bursts = ["".join(f"{name} {i}\n" for i in range(n)).encode() for name in names]
        for client, burst in zip(senders, bursts, strict=True):
            client.send_raw(burst)  # all in the kernel before the server reads any
        got: dict[str, list[int]] = {name: [] for name in names}
        while sum(map(len, got.values())) < len(names) * n:
            line = reader.read_line()
            assert not line.startswith("*** disconnected"), f"cut: {line!r}"
            name, _, rest = line.partition(": ")
            if name in got:
                got[name].append(int(rest.split()[1]))
        assert all(numbers == list(range(n)) for numbers in got.values())
    finally:
        for client in (*senders, reader):
            client.close()


def test_many_leaving_at_once_do_not_cut_a_reader(make_server: Callable[..., ChatServer]) -> None:
    """Leave notices were delivered straight from each leaver's teardown, and
    teardowns woken in one loop turn all ran before the remaining readers'
    writers: more leavers than an outbox holds cut everyone left."""
    server = make_server(outbox_size=20)
    survivor = ChatClient(server.address)
    leavers = [ChatClient(server.address) for _ in range(30)]
    try:
        survivor.register("survivor")
        for i, client in enumerate(leavers):
            client.register(f"u{i}")
        for i in range(len(leavers)):
            survivor.expect(rf"^\*\*\* u{i} joined #lobby$")
        for client in leavers:
            client.close()
        left = 0
        while left < len(leavers):
            line = survivor.read_line()
            assert not line.startswith("*** disconnected"), f"cut: {line!r}"
            left += line.endswith(" left")
    finally:
        for client in (*leavers, survivor):
            client.close()


def test_simultaneous_private_bursts_do_not_cut_their_recipient(
    make_server: Callable[..., ChatServer],
) -> None:
    """As with chat bursts, for ``/msg``: private lines were delivered with
    no chance for a full recipient to drain first."""
    server = make_server(outbox_size=1000)
    names = ["a", "b", "c"]
    senders = [ChatClient(server.address) for _ in names]
    reader = ChatClient(server.address)
    try:
        for client, name in zip(senders, names, strict=True):
            client.register(name)
        reader.register("r")
        n = 600
        for client in senders:
            client.send_raw("".join(f"/msg r {i}\n" for i in range(n)).encode())
        got: dict[str, list[int]] = {name: [] for name in names}
        while sum(map(len, got.values())) < len(names) * n:
            line = reader.read_line()
            assert not line.startswith("*** disconnected"), f"cut: {line!r}"
            if line.startswith("*") and not line.startswith("***"):
                name, number = line[1:].split("* ")
                got[name].append(int(number))
        assert all(numbers == list(range(n)) for numbers in got.values())
    finally:
        for client in (*senders, reader):
            client.close()


def test_sender_does_not_wait_for_a_recipient_that_stopped_reading(
    make_server: Callable[..., ChatServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Senders waited up to 50 ms for every crowded recipient, even one whose
    writer had long been stuck on a full socket: a slow consumer delayed the
    room once more just before it was cut."""
    server = make_server(outbox_size=40)
    stuck = never_reading_client(server.address, "stuck")
    alice = ChatClient(server.address)
    bob = ChatClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        [conn] = [c for c in server.connections if c.nick == "stuck"]
        line = "x" * 4000
        # Fill the stuck client's socket buffers until its writer blocks.
        for i in range(4000):
            alice.send(f"{i} {line}")
            bob.expect(rf"^alice: {i} ")
            if conn.pending >= 3:
                break
        assert conn.pending >= 3, "the stuck client's writer never blocked"
        waits: list[float] = []
        original = Outbox.wait_drained

        def record(self: Outbox, timeout: float) -> None:
            if self is conn:
                waits.append(timeout)
            original(self, timeout)

        monkeypatch.setattr(Outbox, "wait_drained", record)
        # Let its writer stall for longer than STALLED_SECONDS, then flood it.
        start = time.monotonic()
        wait_until(lambda: time.monotonic() - start > 0.3, what="the writer to count as stalled")
        for i in range(60):
            alice.send(f"more {i}")
        bob.expect(r"^alice: more 59$")
        if "*** stuck left (too slow)" not in bob.lines:
            bob.expect(r"^\*\*\* stuck left \(too slow\)$")
        assert waits == []
    finally:
        stuck.close()
        alice.close()
        bob.close()


def test_sender_still_waits_for_a_recipient_that_reads_steadily(
    make_server: Callable[..., ChatServer],
) -> None:
    """A writer's send blocks until the kernel has room for much more than
    one read frees, so a client that read steadily at a few MB/s still
    showed no writer progress for over 250 ms: it was taken for stalled,
    the sender stopped waiting for it, and it was cut as too slow."""
    server = make_server()
    alice = ChatClient(server.address)
    bob = ChatClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect(r"^\*\*\* bob joined #lobby$")
        assert send_burst_read_paced(alice, bob, 3000) == list(range(3000))
    finally:
        alice.close()
        bob.close()
