"""End-to-end: the limits, each attacked over real sockets.

Flood control, the connection limits (in all and per address), TCP
keepalive, registration abuse (an HTTP request, too many lines before a
nickname) and the registration and idle timeouts.
"""

from __future__ import annotations

import socket as stdsocket
import time
from collections.abc import Callable

import gevent
import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, read_all, sample, wait_until

MakeServer = Callable[..., ChatServer]
Dial = Callable[..., ChatClient]


# -- flood control ---------------------------------------------------------------------


@pytest.mark.timeout(20)  # the flood itself is paced to take about 2 s
def test_flooder_is_slowed_while_others_flow_and_loses_nothing(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(rate_limit=40, rate_burst=10)
    flooder, listener, talker = (dial(server.address) for _ in range(3))
    for client, nick in ((flooder, "flooder"), (listener, "listener"), (talker, "talker")):
        client.register(nick)
    listener.expect("talker joined")
    lines = 90  # 10 at once, then 80 at 40/s: at least 2 s
    start = time.monotonic()
    flooder.send_raw(b"".join(b"flood %d\n" % i for i in range(lines)))
    listener.expect(r"^flooder: flood 0$")
    talker.send("still here")
    got = ["flooder: flood 0"]
    talker_at = None
    while len(got) < lines:
        line = listener.read_line()
        if line == "talker: still here":
            talker_at = time.monotonic() - start
        else:
            got.append(line)
    done_at = time.monotonic() - start
    assert got == [f"flooder: flood {i}" for i in range(lines)]  # none lost, in order
    assert done_at >= 1.5, f"the flood was not paced: done in {done_at:.2f} s"
    assert talker_at is not None, "the talker's line never arrived"
    assert talker_at < 1.0, f"the talker's line waited {talker_at:.2f} s behind the flood"
    assert sample(server, "gevent_chat_flood_throttles_total") > 0
    for client in (flooder, listener, talker):
        client.close()


@pytest.mark.timeout(15)  # three floods paced at 40 lines a second, about 2 s in all
def test_throttled_sender_is_told_once_a_flood(make_server: MakeServer, dial: Dial) -> None:
    """Flood control delayed a sender's lines with no word to the sender."""
    server = make_server(rate_limit=40, rate_burst=10)
    flooder, listener = dial(server.address), dial(server.address)
    flooder.register("flooder")
    listener.register("listener")
    flooder.expect("listener joined")

    def flood(first: int, count: int) -> None:
        flooder.send_raw(b"".join(b"flood %d\n" % i for i in range(first, first + count)))

    def heard(upto: int) -> None:
        listener.expect(rf"^flooder: flood {upto}$")

    flood(0, 50)  # 10 at once, 40 held back
    heard(20)
    flood(50, 30)  # more before the first has cleared: the same flood
    heard(79)
    flooder.send("/msg listener mark")
    got = []
    while (line := flooder.read_line()) != "-> *listener* mark":
        got.append(line)
    assert got == ["*** slow down: 40 lines waiting, sending 40 a second"]
    # A sender that keeps to the rate for a while (here: says nothing for 0.4 s,
    # longer than the 0.25 s the burst takes to refill) has cleared it.
    gevent.sleep(0.4)
    flood(80, 15)
    assert flooder.read_line() == "*** slow down: 5 lines waiting, sending 40 a second"
    heard(94)


def test_zero_rate_limit_turns_pacing_off(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(rate_limit=0)
    a, b = dial(server.address), dial(server.address)
    a.register("a")
    b.register("b")
    a.expect("b joined")
    b.send_raw(b"".join(b"x%d\n" % i for i in range(500)))
    for i in range(500):
        assert a.read_line(timeout=2) == f"b: x{i}"
    assert sample(server, "gevent_chat_flood_throttles_total") == 0


# -- connection limits -----------------------------------------------------------------


def test_connection_beyond_max_clients_is_told_server_full(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_clients=2)
    first, second = dial(server.address), dial(server.address)
    first.register("first")
    second.expect_prompt()  # connected, not registered: still counts
    third = dial(server.address)
    assert read_all(third) == b"*** server full\n"
    first.close()
    wait_until(lambda: server.limits.total == 1, what="the slot to be freed")
    fourth = dial(server.address)
    fourth.register("fourth")
    assert sample(server, "gevent_chat_refused_connections_total", reason="server_full") == 1
    for c in (second, third, fourth):
        c.close()


def test_connections_beyond_max_per_ip_are_refused_per_address(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_per_ip=2)
    ones = [dial(server.address) for _ in range(2)]
    for c in ones:
        c.expect_prompt()
    refused = dial(server.address)
    assert read_all(refused) == b"*** too many connections from your address\n"
    other = dial(server.address, source="127.0.0.2")  # another address: its own count
    other.register("elsewhere")
    assert sample(server, "gevent_chat_refused_connections_total", reason="per_ip") == 1
    for c in (*ones, refused, other):
        c.close()


def test_accepted_sockets_have_tcp_keepalive(server: ChatServer, dial: Dial) -> None:
    client = dial(server.address)
    client.expect_prompt()
    (conn,) = server.connections
    assert conn.sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE) == 1
    if hasattr(stdsocket, "TCP_KEEPIDLE"):
        assert conn.sock.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPIDLE) == 120
    client.close()


# -- registration abuse ----------------------------------------------------------------


def test_http_request_is_told_this_is_a_chat_server(server: ChatServer, dial: Dial) -> None:
    client = dial(server.address)
    client.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n")
    data = read_all(client)
    assert data.endswith(b"*** this is a chat server, not an HTTP server\n")
    assert sample(server, "gevent_chat_refused_connections_total", reason="http") == 1


def test_too_many_lines_before_registering_is_cut(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_unregistered_lines=5)
    client = dial(server.address)
    client.send_raw(b"bad nick!\n" * 5)
    for _ in range(5):
        client.expect("invalid")
    client.send_raw(b"still bad!\n")
    assert b"*** too many lines before registering, goodbye\n" in read_all(client)
    wait_until(lambda: not server.connections, what="the connection to be gone")
    assert sample(server, "gevent_chat_refused_connections_total", reason="unregistered_lines") == 1


def test_registration_lines_within_the_cap_still_register(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_unregistered_lines=5)
    client = dial(server.address)
    client.send_raw(b"bad!\n" * 4)
    client.send("alice")
    client.expect(r"\*\*\* Welcome, alice!")
    client.close()


# -- timeouts --------------------------------------------------------------------------


def test_silent_unregistered_client_is_cut_at_register_timeout(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(register_timeout=0.3)
    client = dial(server.address)
    start = time.monotonic()
    assert read_all(client).endswith(b"*** registration timed out, goodbye\n")
    assert time.monotonic() - start < 2.0
    assert sample(server, "gevent_chat_timeout_disconnects_total", kind="register") == 1


def test_idle_user_is_disconnected_while_a_talker_stays(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(idle_timeout=0.4)
    idle, talker = dial(server.address), dial(server.address)
    idle.register("idle")
    talker.register("talker")
    start = time.monotonic()

    def keep_talking() -> None:
        while True:
            talker.send("tick")
            gevent.sleep(0.1)

    chatter = gevent.spawn(keep_talking)
    try:
        data = read_all(idle, timeout=4)
        assert b"*** disconnected: idle for 0.4 seconds\n" in data
        assert time.monotonic() - start >= 0.3
        talker.expect(r"^\*\*\* idle left \(idle\)$")
        assert [c.nick for c in server.connections] == ["talker"]
    finally:
        chatter.kill()
    assert sample(server, "gevent_chat_timeout_disconnects_total", kind="idle") == 1
    talker.close()
