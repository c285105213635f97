"""End-to-end: slash commands, rooms and history over real sockets."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient

Connect = Callable[..., ChatClient]


def sync(client: ChatClient, token: str = "sync") -> list[str]:
    """Round-trip /ping: returns the lines that arrived before the pong."""
    start = len(client.lines)
    client.send(f"/ping {token}")
    client.expect(rf"^\*\*\* pong {re.escape(token)}$")
    return client.lines[start:-1]


def test_help_lists_every_command(connect: Connect) -> None:
    alice = connect("alice")
    alice.send("/HELP")
    lines = sync(alice)
    for name in ("help", "who", "nick", "msg", "me", "join", "rooms", "ping", "quit"):
        assert any(line.startswith(f"*** /{name}") for line in lines), name


def test_unknown_command_suggests_help(connect: Connect) -> None:
    alice = connect("alice")
    alice.send("/foo bar")
    alice.expect(r"^\*\*\* unknown command: /foo \(try /help\)$")


def test_double_slash_sends_literal_line(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("//shrug")
    bob.expect(r"^alice: /shrug$")


def test_who_lists_room_members_and_count(connect: Connect) -> None:
    alice = connect("alice")
    connect("bob")
    alice.send("/who")
    alice.expect(r"^\*\*\* 2 users in #lobby: alice, bob$")


def test_nick_renames_and_tells_room(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("/nick alicia")
    alice.expect(r"^\*\*\* you are now known as alicia$")
    bob.expect(r"^\*\*\* alice is now known as alicia$")
    alice.send("hi")
    bob.expect(r"^alicia: hi$")


@pytest.mark.parametrize(("new", "word"), [("Bob", "taken"), ("-x", "invalid"), ("a\x1b[31mb", "invalid")])
def test_nick_refusals_say_why(connect: Connect, new: str, word: str) -> None:
    alice = connect("alice")
    connect("bob")
    alice.send(f"/nick {new}")
    alice.expect(rf"^\*\*\* .*{word}")


def test_msg_reaches_only_its_recipient(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.send("/join elsewhere")
    alice.expect("you joined #elsewhere")
    alice.send("/msg BOB psst")
    alice.expect(r"^-> \*bob\* psst$")
    bob.expect(r"^\*alice\* psst$")
    assert not any("psst" in line for line in sync(carol))


def test_msg_to_unknown_nick_gets_error(connect: Connect) -> None:
    alice = connect("alice")
    alice.send("/msg nobody hi")
    alice.expect(r"^\*\*\* no such user: nobody$")


def test_me_reaches_room_as_action(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("/me waves hello")
    bob.expect(r"^\* alice waves hello$")


def test_join_moves_between_rooms_and_scopes_chat(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.send("/join #dev")
    alice.expect(r"^\*\*\* you joined #dev$")
    bob.expect(r"^\*\*\* alice left #lobby$")
    bob.send("/join dev")
    alice.expect(r"^\*\*\* bob joined #dev$")
    alice.send("in dev")
    bob.expect(r"^alice: in dev$")
    carol.send("in lobby")
    assert not any("in lobby" in line or "in dev" in line for line in sync(bob) + sync(alice, "a"))
    assert not any("in dev" in line for line in sync(carol))
    alice.send("/who")
    alice.expect(r"^\*\*\* 2 users in #dev: @alice, bob$")


def test_rooms_lists_rooms_with_sizes_and_empty_rooms_vanish(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("/join dev")
    alice.expect("you joined #dev")
    bob.send("/rooms")
    bob.expect(r"^\*\*\* 2 rooms: #dev \(1\), #lobby \(1\)$")
    alice.send("/join lobby")
    alice.expect("you joined #lobby")
    bob.send("/rooms")
    bob.expect(r"^\*\*\* 1 room: #lobby \(2\)$")


def test_ping_answers_after_queued_lines(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    for i in range(50):
        alice.send(f"line {i}")
    alice.send("/msg bob done")
    bob.expect(r"^\*alice\* done$")
    before = sync(bob, "tok 1")
    assert [line for line in bob.lines if line.startswith("alice: ")] == [
        f"alice: line {i}" for i in range(50)
    ]
    assert before == []


def test_quit_says_bye_and_room_sees_reason(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("/quit gone fishing")
    assert alice.read_until_closed()[-1] == "*** bye"
    bob.expect(r"^\*\*\* alice left \(gone fishing\)$")


def test_history_is_replayed_to_newcomers_with_time(connect: Connect) -> None:
    alice = connect("alice")
    connect("bob")
    alice.send("first")
    alice.send("/me second")
    sync(alice)
    carol = connect()
    carol.expect_prompt()
    carol.send("carol")
    carol.expect("Welcome, carol")
    assert re.fullmatch(r"\[\d\d:\d\d\] alice: first", carol.read_line())
    assert re.fullmatch(r"\[\d\d:\d\d\] \* alice second", carol.read_line())


def test_history_is_bounded(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(history=3)
    alice = ChatClient(server.address)
    alice.register("alice")
    for i in range(10):
        alice.send(f"m{i}")
    sync(alice)
    bob = ChatClient(server.address)
    bob.register("bob")
    replay = sync(bob)
    assert [line[8:] for line in replay] == ["alice: m7", "alice: m8", "alice: m9"]
    alice.close()
    bob.close()


def test_join_replays_room_history_and_empty_room_forgets_it(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("/join dev")
    alice.expect("you joined #dev")
    alice.send("remember me")
    sync(alice)
    bob.send("/join dev")
    bob.expect("you joined #dev")
    bob.expect(r"^\[\d\d:\d\d\] alice: remember me$")
    alice.send("/join lobby")
    bob.send("/join lobby")
    bob.expect("you joined #lobby")
    bob.send("/join dev")
    bob.expect("you joined #dev")
    assert sync(bob) == []
