"""End-to-end: protocol points 5, 6 and 8, how lines are cut and relayed.

Broadcast without echo and blank lines ignored; framing (CRLF or LF, lines
dribbled a byte at a time or many in one segment, a last line without its
newline); and the line limit, up to a 100 MB line that must not raise the
server's memory (a child process, ``spawn_server``).
"""

from __future__ import annotations

import socket as stdsocket
from collections.abc import Callable

import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, pair, read_raw_line

Connect = Callable[..., ChatClient]


# -- 5. broadcast, no echo, blank lines ---------------------------------------------


def test_chat_reaches_every_other_user_without_echo(connect: Connect) -> None:
    alice, bob = pair(connect)
    carol = connect("carol")
    alice.expect("carol joined")
    bob.expect("carol joined")
    alice.send("hello all")
    bob.expect(r"^alice: hello all$")
    carol.expect(r"^alice: hello all$")
    carol.send("marker")
    # alice's own line never came back: the next thing she sees is carol's.
    assert alice.read_line() == "carol: marker"


def test_blank_lines_are_ignored(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"\n   \n\r\n\t\n\x1b[0m\nafter blanks\n")
    assert bob.read_line() == "alice: after blanks"


# -- 6. framing ---------------------------------------------------------------------


def test_crlf_line_endings_are_accepted_and_output_ends_with_lf(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send("from telnet", end=b"\r\n")
    assert read_raw_line(bob) == b"alice: from telnet"


def test_crlf_works_for_the_nickname_too(connect: Connect) -> None:
    client = connect()
    client.expect_prompt()
    client.send("winuser", end=b"\r\n")
    assert client.expect("Welcome").string.startswith("*** Welcome, winuser!")


def test_line_sent_one_byte_at_a_time_arrives_whole(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
    for byte in b"dribbled slowly\r\n":
        alice.send_raw(bytes([byte]))
    assert read_raw_line(bob) == b"alice: dribbled slowly"


def test_hundred_lines_in_one_segment_all_arrive_in_order(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"".join(b"line %d\n" % i for i in range(100)))
    assert [bob.read_line() for _ in range(100)] == [f"alice: line {i}" for i in range(100)]


def test_nickname_and_first_lines_in_one_segment(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect()
    bob.expect_prompt()
    bob.send_raw(b"bob\r\nfirst\nsecond\r\n")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    assert [alice.read_line(), alice.read_line()] == ["bob: first", "bob: second"]


def test_last_line_without_newline_is_delivered_on_close(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"bye")
    alice.close()
    bob.expect(r"^alice: bye$")
    bob.expect(r"^\*\*\* alice left$")


def test_last_line_without_newline_is_delivered_on_half_close(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"half closed")
    alice.sock.shutdown(stdsocket.SHUT_WR)  # as `nc -N` does at end of input
    bob.expect(r"^alice: half closed$")
    bob.expect(r"^\*\*\* alice left$")


# -- 8. line limit ------------------------------------------------------------------


def test_overlong_line_is_refused_and_connection_carries_on(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send(b"y" * 5000)
    assert alice.read_line() == "*** error: line too long (limit 4096 bytes)"
    alice.send("short again")
    assert bob.read_line() == "alice: short again"  # bob never saw any of the long line


def test_line_of_exactly_the_limit_is_relayed(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(max_line_bytes=32)
    alice, bob = ChatClient(server.address), ChatClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        alice.send(b"z" * 32, end=b"\r\n")  # the line ending does not count
        assert bob.read_line() == "alice: " + "z" * 32
        alice.send(b"z" * 33)
        assert alice.read_line() == "*** error: line too long (limit 32 bytes)"
        alice.send("next")
        assert bob.read_line() == "alice: next"
    finally:
        alice.close()
        bob.close()


def _vm_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


# Streams 100 MB through loopback; that takes a few seconds on a busy 2-core machine.
@pytest.mark.timeout(60)
def test_hundred_megabyte_line_does_not_raise_server_memory(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server()
    addr = server.wait_listening()
    alice, bob = ChatClient(addr, timeout=30), ChatClient(addr, timeout=30)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        peak_before = _vm_kb(server.pid, "VmHWM")
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            alice.send_raw(chunk)
        alice.send("\nafter the flood")
        assert alice.read_line(30) == "*** error: line too long (limit 4096 bytes)"
        assert bob.read_line(30) == "alice: after the flood"
        grown_kb = _vm_kb(server.pid, "VmHWM") - peak_before
        assert grown_kb < 20 * 1024, f"server peak RSS grew by {grown_kb} kB for one long line"
    finally:
        alice.close()
        bob.close()
