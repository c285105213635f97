"""The direct-send fast path and the writer: what they can get wrong together.

A delivery to a client with no writer waits in ``Outbox._direct`` until the
end of the loop turn, when the hub sends it with one non-blocking ``send``;
only what the kernel does not take starts a writer.  These tests make the
kernel refuse bytes on purpose (a tiny ``SO_RCVBUF`` on the reader, a tiny
``SO_SNDBUF`` on the server's end, big lines) so that a connection switches
between the two paths mid-stream, and check that every byte arrives once
and in order, that a cut or a reset in between is harmless, and that
shutdown still flushes what is due.

Plain-call tests drive an ``Outbox`` on a socketpair; the others run a real
server in this process and look at its members to know which path was taken.
"""

from __future__ import annotations

import select
import socket as stdsocket
from collections.abc import Callable, Iterator

import gevent
import pytest
from gevent import socket

from gevent_chat.client.tls import client_context
from gevent_chat.core.config import Config
from gevent_chat.core.events import Said
from gevent_chat.server import ChatServer
from gevent_chat.server.bus import LocalBroker
from gevent_chat.server.member import Member
from gevent_chat.server.metrics import Tally
from gevent_chat.server.outbox import Outbox
from gevent_chat.server.writers import WriterPool
from tests.helpers import ChatClient, never_reading_client, wait_until

MakeServer = Callable[..., ChatServer]

#: Big lines fill a small window in a few deliveries (the line limit is 4096 bytes).
FILLER = "x" * 3000


# -- plain calls: an Outbox on a socketpair ----------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server end with a small send buffer, peer end with a small receive buffer)."""
    ours, peer = socket.socketpair()
    ours.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
    peer.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    yield ours, peer
    ours.close()
    peer.close()


def make_outbox(sock: socket.socket, limit: int = 10_000) -> Outbox:
    return Outbox(sock, "peer", limit, WriterPool(limit), Tally())


def read_exactly(sock: socket.socket, n: int) -> bytes:
    sock.settimeout(5)
    chunks, got = [], 0
    while got < n:
        data = sock.recv(65536)
        assert data, f"closed after {got} of {n} bytes"
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def numbered(start: int, stop: int) -> list[bytes]:
    return [f"{i} {FILLER}\n".encode() for i in range(start, stop)]


def test_deliveries_in_one_turn_leave_in_one_direct_send(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    outbox = make_outbox(ours)
    outbox.deliver(b"a\n")
    outbox.deliver(b"b\nc\n", 2)
    outbox.deliver(b"d\n")
    assert outbox.pending == 4
    assert outbox.outbox is None
    gevent.sleep(0)
    assert read_exactly(peer, 8) == b"a\nb\nc\nd\n"
    assert outbox.pending == 0
    assert outbox.outbox is None
    assert outbox._direct is None
    assert outbox.tally.bytes_out == 8


def test_bytes_keep_their_order_from_direct_to_writer_and_back(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A full socket hands the rest to a writer; later deliveries queue behind it;
    once it has sent everything, the direct path takes over again."""
    ours, peer = pair
    outbox = make_outbox(ours)
    first = numbered(0, 100)  # 300 KB: far more than the socket takes
    for line in first:
        outbox.deliver(line)
    gevent.sleep(0)  # the end-of-turn direct send: partial
    assert outbox.outbox is not None, "the kernel took everything: the test needs a fuller socket"
    assert outbox._direct is None
    second = numbered(100, 150)
    for line in second:
        outbox.deliver(line)  # a writer exists: these queue behind it
        assert outbox._direct is None
    expected = b"".join(first + second)
    assert read_exactly(peer, len(expected)) == expected
    assert outbox.wait_flushed(5)
    assert outbox.pending == 0
    assert outbox.outbox is None
    outbox.deliver(b"third\n")
    assert outbox._direct == b"third\n"  # direct again
    gevent.sleep(0)
    assert read_exactly(peer, 6) == b"third\n"
    assert outbox.pending == 0
    assert not outbox.closing


def test_a_peer_gone_before_the_direct_send_cuts_quietly(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    outbox = make_outbox(ours)
    outbox.deliver(b"hello\n")
    peer.close()  # between the delivery and the end of the turn
    gevent.sleep(0)
    assert outbox.closing
    assert outbox._cut
    assert outbox.cut_reason is None
    assert outbox.outbox is None
    assert outbox._direct is None
    outbox.deliver(b"more\n")  # a closing outbox takes nothing, and raises nothing
    gevent.sleep(0)
    assert outbox._direct is None


def test_a_cut_before_the_direct_send_sends_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    outbox = make_outbox(ours)
    outbox.deliver(b"dropped\n")
    outbox.cut("too slow")
    gevent.sleep(0)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing was sent (SHUT_RD on our end does not close the stream)
    assert outbox.tally.bytes_out == 0


def test_wait_flushed_waits_for_the_direct_send(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    outbox = make_outbox(ours)
    outbox.deliver(b"last\n")
    assert outbox._direct is not None
    assert outbox.wait_flushed(2)
    assert read_exactly(peer, 5) == b"last\n"


def test_a_full_outbox_is_cut_even_before_its_direct_send(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _peer = pair
    outbox = make_outbox(ours, limit=3)
    for _ in range(3):
        outbox.deliver(b"x\n")
    outbox.deliver(b"one too many\n")
    assert outbox._cut
    assert outbox.cut_reason == "too slow"
    assert outbox._direct is None
    gevent.sleep(0)
    assert outbox.tally.bytes_out == 0


# -- over real sockets -------------------------------------------------------------


def small_window_client(
    addr: tuple[str, int], rcvbuf: int = 4096, tls_cafile: str | None = None
) -> ChatClient:
    """A ``ChatClient`` whose receive buffer is set before connecting (so the window is small)."""
    sock = socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(addr)
    client = ChatClient.__new__(ChatClient)
    client.sock, client.timeout, client.buf, client.lines = sock, 5.0, b"", []
    if tls_cafile is not None:
        client.sock = client_context(cafile=tls_cafile).wrap_socket(sock, server_hostname="127.0.0.1")
    return client


def tls_client(addr: tuple[str, int], cafile: str, rcvbuf: int | None = None) -> ChatClient:
    if rcvbuf is not None:
        return small_window_client(addr, rcvbuf, tls_cafile=cafile)
    client = ChatClient(addr)
    client.sock = client_context(cafile=cafile).wrap_socket(client.sock, server_hostname="127.0.0.1")
    return client


def shrink_send_buffer(server: ChatServer, nick: str) -> Member:
    """``nick``'s member, its socket's send buffer made small.

    The kernel may give an accepted socket a send buffer of megabytes, which
    would take a whole burst; a small one makes the socket fill on cue.
    """
    member = server.registry.get(nick)
    assert member is not None
    member.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
    return member


def burst(sender: ChatClient, start: int, stop: int) -> gevent.Greenlet[..., None]:
    """Send numbered big lines ``start..stop-1`` at once, from a greenlet of their own."""
    data = "".join(f"{i} {FILLER}\n" for i in range(start, stop)).encode()
    return gevent.spawn(sender.send_raw, data)


def read_numbers(client: ChatClient, nick: str, count: int, timeout: float = 8.0) -> list[int]:
    """The numbers of the next ``count`` numbered lines from ``nick``; fails on a cut."""
    prefix = f"{nick}: "
    got: list[int] = []
    while len(got) < count:
        line = client.read_line(timeout)
        assert not line.startswith("*** disconnected"), f"{line!r} after {len(got)} lines"
        if line.startswith(prefix):
            got.append(int(line[len(prefix) :].split(" ", 1)[0]))
    return got


def test_a_client_that_fills_up_gets_every_line_in_order_across_both_paths(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    carol = connect("carol")
    bob = small_window_client(server.address)
    try:
        bob.register("bob")
        member = shrink_send_buffer(server, "bob")
        assert member._raw is not None
        alice.expect("bob joined")
        carol.expect("bob joined")

        alice.send(f"0 {FILLER}")  # direct: the socket has room
        assert read_numbers(bob, "alice", 1) == [0]
        assert read_numbers(carol, "alice", 1) == [0]
        assert member.outbox is None

        sending = burst(alice, 1, 201)  # 600 KB while bob does not read
        wait_until(lambda: member.outbox is not None, what="a writer for the full socket")
        assert read_numbers(carol, "alice", 200) == list(range(1, 201))  # others unaffected meanwhile
        assert read_numbers(bob, "alice", 200) == list(range(1, 201))
        sending.join(5)
        wait_until(lambda: member.outbox is None and member.pending == 0, what="the writer to end")

        alice.send(f"201 {FILLER}")  # direct again
        assert read_numbers(bob, "alice", 1) == [201]
        assert read_numbers(carol, "alice", 1) == [201]
        assert not member.closing
        assert not any("left" in line for line in carol.lines), carol.lines[-3:]
    finally:
        bob.close()


def test_a_recipient_that_stops_reading_mid_broadcast_is_cut_alone(make_server: MakeServer) -> None:
    server = make_server(outbox_size=20)
    alice, carol = ChatClient(server.address), ChatClient(server.address)
    alice.register("alice")
    carol.register("carol")
    dave = never_reading_client(server.address, "dave")
    try:
        wait_until(lambda: server.registry.get("dave") is not None, what="dave to register")
        member = shrink_send_buffer(server, "dave")
        carol.expect("dave joined")

        sending = burst(alice, 0, 200)  # the first lines reach dave directly, then it fills
        assert read_numbers(carol, "alice", 200) == list(range(200))
        sending.join(5)
        assert member._cut
        assert member.cut_reason == "too slow"
        for client in (carol, alice):  # carol may have read it among alice's lines
            if "*** dave left (too slow)" not in client.lines:
                client.expect(r"^\*\*\* dave left \(too slow\)$")
        alice.send("still here")
        carol.expect("^alice: still here$")
        assert server.registry.get("carol") is not None
        assert server.registry.get("alice") is not None
    finally:
        for client in (alice, carol):
            client.close()
        dave.close()


def test_a_peer_reset_before_the_end_of_turn_send_is_a_quiet_leave(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    alice, carol, bob = connect("alice"), connect("carol"), connect("bob")
    alice.expect("bob joined")
    carol.expect("bob joined")
    sender, victim = server.registry.get("alice"), server.registry.get("bob")
    assert sender is not None
    assert victim is not None
    assert victim.room is not None
    fd = victim.sock.fileno()
    bob.reset()
    # Without yielding (the server is in this process): wait for the kernel to
    # take the RST on the server's end, so the direct send below meets it.
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    assert poller.poll(2000), "the reset did not arrive"
    server.hub.broadcast(victim.room, Said("lobby", "alice", (b"into the void",)), 0.0, [], sender)
    assert victim._direct is not None  # delivered; the send comes at the end of this turn
    carol.expect("^alice: into the void$")
    carol.expect(r"^\*\*\* bob left$")
    alice.expect(r"^\*\*\* bob left$")
    wait_until(lambda: victim not in server.connections, what="bob's teardown")
    assert victim.closing
    assert victim._direct is None
    alice.send("after")
    carol.expect("^alice: after$")


@pytest.fixture
def mixed_servers(cert: tuple[str, str]) -> Iterator[tuple[ChatServer, ChatServer]]:
    """A plain and a TLS server sharing one room through a ``LocalBroker``."""
    certfile, keyfile = cert
    broker = LocalBroker()
    plain = ChatServer(Config(host="127.0.0.1", port=0, rate_limit=0), bus=broker.bus())
    secure = ChatServer(
        Config(host="127.0.0.1", port=0, rate_limit=0, certfile=certfile, keyfile=keyfile), bus=broker.bus()
    )
    plain.start()
    secure.start()
    yield plain, secure
    secure.stop(timeout=1)
    plain.stop(timeout=1)


def test_tls_clients_on_the_writer_path_share_a_room_with_direct_ones(
    mixed_servers: tuple[ChatServer, ChatServer], cert: tuple[str, str]
) -> None:
    plain, secure = mixed_servers
    cafile = cert[0]
    alice, paul = ChatClient(plain.address), ChatClient(plain.address)
    tom = tls_client(secure.address, cafile)
    tina = tls_client(secure.address, cafile, rcvbuf=4096)  # fills up: a TLS writer resumes a record
    clients = (alice, paul, tom, tina)
    try:
        for client, nick in zip(clients, ("alice", "paul", "tom", "tina"), strict=True):
            client.register(nick)
        for nick in ("tom", "tina"):
            member = secure.registry.get(nick)
            assert member is not None
            assert member._raw is None
        assert all(plain.registry.get(n)._raw is not None for n in ("alice", "paul"))  # type: ignore[union-attr]
        slow = shrink_send_buffer(secure, "tina")
        sending = [burst(alice, 0, 100), burst(tom, 0, 100)]  # both at once, 300 KB each
        wait_until(lambda: slow.outbox is not None, what="a writer for tina")
        for reader, senders in ((paul, ("alice", "tom")), (tom, ("alice",)), (alice, ("tom",))):
            for nick in senders:
                got = read_numbers_from(reader, nick, 100)
                assert got == list(range(100)), (reader, nick)
        for nick in ("alice", "tom"):
            assert read_numbers_from(tina, nick, 100) == list(range(100))
        gevent.joinall(sending, timeout=5)
        wait_until(lambda: slow.outbox is None and slow.pending == 0, what="tina's writer to end")
        assert not slow.closing
    finally:
        for client in clients:
            client.close()


def read_numbers_from(client: ChatClient, nick: str, count: int) -> list[int]:
    """Like ``read_numbers``, but lines from other senders already read are kept for later."""
    prefix = f"{nick}: "
    seen = [int(line[len(prefix) :].split(" ", 1)[0]) for line in client.lines if line.startswith(prefix)]
    while len(seen) < count:
        line = client.read_line(8.0)
        assert not line.startswith("*** disconnected"), line
        if line.startswith(prefix):
            seen.append(int(line[len(prefix) :].split(" ", 1)[0]))
    return seen[:count]


def test_shutdown_flushes_a_pending_direct_send_then_the_farewell() -> None:
    server = ChatServer(Config(host="127.0.0.1", port=0, rate_limit=0))
    server.start()
    alice, bob = ChatClient(server.address), ChatClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        sender, member = server.registry.get("alice"), server.registry.get("bob")
        assert sender is not None
        assert member is not None
        assert member.room is not None
        server.hub.broadcast(member.room, Said("lobby", "alice", (b"last words",)), 0.0, [], sender)
        assert member._direct is not None  # not sent yet when shutdown begins
        server.stop(timeout=2)
        lines = bob.read_until_closed()
        assert lines[-2:] == ["alice: last words", "*** server shutting down"]
        assert alice.read_until_closed()[-1:] == ["*** server shutting down"]
    finally:
        alice.close()
        bob.close()
