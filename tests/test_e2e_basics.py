"""End-to-end: registration, broadcast, leave, over real sockets."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import ChatClient


def test_line_reaches_others_without_echo(connect: Callable[..., ChatClient]) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    alice.send("hello bob")
    bob.expect(r"^alice: hello bob$")
    bob.send("hi")
    assert alice.read_line() == "bob: hi"  # alice's own line never came back to her


def test_welcome_counts_users_online(connect: Callable[..., ChatClient]) -> None:
    connect("alice")
    welcome = connect("bob").lines[-1]
    assert welcome == "*** Welcome, bob! 2 users online"


def test_disconnect_is_announced(connect: Callable[..., ChatClient]) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.expect("bob joined")
    bob.close()
    alice.expect(r"^\*\*\* bob left$")
