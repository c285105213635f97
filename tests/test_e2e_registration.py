"""End-to-end: protocol points 1 to 4, from listening to the welcome.

The listening address and the command line (in a child process,
``spawn_server``), the nickname prompt and its rules, the registration
timeout, and the welcome and ``joined`` notices, over real sockets.  Each
test names the protocol point it holds.
"""

from __future__ import annotations

import re
import socket as stdsocket
from collections.abc import Callable

import pytest

from gevent_chat.core.config import parse_args
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess

Connect = Callable[..., ChatClient]


# -- 1. command line and listening address ------------------------------------------


def test_default_listen_address_is_all_interfaces_port_8000() -> None:
    config = parse_args([])
    assert (config.host, config.port) == ("0.0.0.0", 8000)


def test_port_zero_logs_the_real_address(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server()
    line = next(ln for ln in server.log if "listening on" in ln)
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)$", line)
    assert m is not None, line
    port = int(m.group(1))
    assert port != 0
    client = ChatClient(("127.0.0.1", port))
    try:
        client.expect_prompt()
    finally:
        client.close()


def _has_ipv6_loopback() -> bool:
    if not stdsocket.has_ipv6:
        return False
    try:
        with stdsocket.socket(stdsocket.AF_INET6, stdsocket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_host_listens_and_serves(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server(host="::1")
    assert any(re.search(r"listening on \[::1\]:\d+$", ln) for ln in server.log), server.log
    host, port = server.wait_listening()
    assert host == "::1"
    client = ChatClient((host, port))
    try:
        assert client.register("six").startswith("*** Welcome, six!")
    finally:
        client.close()


# -- 2, 3. prompt and nickname rules ------------------------------------------------


def test_connect_gets_prompt_with_nickname(connect: Connect) -> None:
    client = connect()
    client.expect_prompt()


@pytest.mark.parametrize(
    "bad",
    [b"\x1b[31mbob", b"bob\x1b[0m", b"a" * 33, b"-bob", b".bob", b"bo b", b"bo\x07b", b""],
    ids=["csi-prefix", "csi-suffix", "33-chars", "leading-dash", "leading-dot", "space", "bell", "empty"],
)
def test_invalid_nick_is_refused_and_prompt_repeats(connect: Connect, bad: bytes) -> None:
    client = connect()
    client.expect_prompt()
    client.send(bad)
    line = client.read_line()
    assert line.startswith("*** "), line
    assert "invalid" in line, line
    # Refused, not cleaned: the same connection can still pick a proper nick.
    assert client.register("bob").startswith("*** Welcome, bob!")


def test_overlong_nickname_line_is_refused_and_prompt_repeats(connect: Connect) -> None:
    client = connect()
    client.expect_prompt()
    client.send(b"n" * 5000)
    assert client.read_line() == "*** error: line too long (limit 4096 bytes)"
    assert client.register("bob").startswith("*** Welcome, bob!")


def test_nick_with_escape_is_not_registered_as_cleaned_nick(connect: Connect) -> None:
    first = connect()
    first.expect_prompt()
    first.send(b"\x1b[31mbob")
    first.expect("invalid")
    # Had the nick been cleaned into "bob", this would be taken.
    assert connect("bob").lines[-1].startswith("*** Welcome, bob!")


@pytest.mark.parametrize("other", ["alice", "ALICE", "Alice", "  alice  "])
def test_taken_nick_is_refused_case_insensitively(connect: Connect, other: str) -> None:
    connect("alice")
    client = connect()
    client.expect_prompt()
    client.send(other)
    line = client.read_line()
    assert line.startswith("*** "), line
    assert "taken" in line, line
    client.expect_prompt()


def test_unicode_nick_is_accepted(connect: Connect) -> None:
    assert connect("Zoë_1.x-y").lines[-1] == "*** Welcome, Zoë_1.x-y! 1 user online"


def test_unregistered_client_is_told_and_closed_after_timeout(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(register_timeout=0.3)
    client = ChatClient(server.address)
    try:
        client.expect_prompt()
        lines = client.read_until_closed(timeout=5)
    finally:
        client.close()
    assert any(ln.startswith("*** ") and "time" in ln for ln in lines), lines


def test_register_timeout_spares_registered_users(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(register_timeout=0.3)
    alice, late = ChatClient(server.address), ChatClient(server.address)
    try:
        alice.register("alice")
        late.expect_prompt()
        late.read_until_closed(timeout=5)  # late's timer fired, so alice's has long passed
        bob = ChatClient(server.address)
        try:
            bob.register("bob")
            alice.expect(r"^\*\*\* bob joined #lobby$")
            alice.send("still here")
            bob.expect(r"^alice: still here$")
        finally:
            bob.close()
    finally:
        alice.close()
        late.close()


# -- 4. welcome and joined ----------------------------------------------------------


def test_first_user_is_welcomed_with_count_of_one(connect: Connect) -> None:
    assert connect("alice").lines[-1] == "*** Welcome, alice! 1 user online"


def test_others_are_told_who_joined(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    assert bob.lines[-1] == "*** Welcome, bob! 2 users online"
    connect("carol")
    alice.expect(r"^\*\*\* carol joined #lobby$")
    bob.expect(r"^\*\*\* carol joined #lobby$")
