"""The pure Session: lines in, effects out, with plain calls (no sockets)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.effects import (
    Authenticate,
    Close,
    Pause,
    Registered,
    Removed,
    Reply,
    Send,
    ToRoom,
    ToShared,
)
from gevent_chat.core.events import Joined, NickChanged, Quit, Said
from gevent_chat.core.gate import Gate
from gevent_chat.core.protocol import NICK_PROMPT
from gevent_chat.core.registry import Registry
from gevent_chat.core.session import Session


class Member:
    """What the registry holds; a session only passes it around."""

    def __init__(self, name: str) -> None:
        self.name = name


def new_session(
    registry: Registry[Member], name: str = "m", password: str | None = None, max_lines: int = 50
) -> Session[Member]:
    return Session(Member(name), registry, Gate(password, max_lines, delay=1.0), max_line_bytes=100)


def registered(registry: Registry[Member], nick: str) -> Session[Member]:
    session = new_session(registry, nick)
    session.receive([nick.encode()])
    return session


def test_opening_is_the_nick_prompt_without_a_newline() -> None:
    assert new_session(Registry()).opening() == [Send(NICK_PROMPT, lines=0)]


def test_registration_welcomes_and_tells_the_room() -> None:
    registry: Registry[Member] = Registry()
    registered(registry, "bob")
    alice = new_session(registry)
    effects = alice.receive([b"alice"])
    room = registry.room_of("alice")
    assert effects == [
        Registered("alice"),
        Reply("Welcome, alice! 2 users online"),
        ToRoom(room, Joined("lobby", "alice")),
    ]
    assert alice.nick == "alice"
    assert alice.room is room


def test_a_taken_nick_is_refused_and_the_prompt_repeated() -> None:
    registry: Registry[Member] = Registry()
    registered(registry, "bob")
    effects = new_session(registry).receive([b"BOB"])
    assert effects == [Send(b"*** nickname BOB is taken, choose another\n" + NICK_PROMPT)]


def test_consecutive_chat_lines_become_one_said_event() -> None:
    registry: Registry[Member] = Registry()
    alice = registered(registry, "alice")
    effects = alice.receive([b"hi", b"", b"  ", b"caf\xc3\xa9 \x1b[2Jok", b"bye"])
    said = Said("lobby", "alice", (b"hi", "café ok".encode(), b"bye"))
    assert effects == [ToRoom(registry.room_of("alice"), said)]


def test_a_command_splits_the_chat_around_it_in_order() -> None:
    registry: Registry[Member] = Registry()
    alice = registered(registry, "alice")
    room = registry.room_of("alice")
    effects = alice.receive([b"one", b"/ping x", b"two"])
    assert effects == [
        ToRoom(room, Said("lobby", "alice", (b"one",))),
        Reply("pong x"),
        ToRoom(room, Said("lobby", "alice", (b"two",))),
    ]


def test_nick_change_renames_the_chat_prefix() -> None:
    registry: Registry[Member] = Registry()
    alice = registered(registry, "alice")
    effects = alice.receive([b"/nick al", b"hi"])
    room = registry.room_of("al")
    assert ToShared((room,), NickChanged("alice", "al")) in effects
    assert effects[-1] == ToRoom(room, Said("lobby", "al", (b"hi",)))
    assert alice.nick == "al"


def test_join_moves_the_session_to_the_new_room() -> None:
    registry: Registry[Member] = Registry()
    alice = registered(registry, "alice")
    alice.receive([b"/join dev"])
    assert alice.room is registry.room_of("alice")
    assert alice.room.name == "dev"


def test_quit_closes_and_what_follows_is_ignored() -> None:
    registry: Registry[Member] = Registry()
    alice = registered(registry, "alice")
    effects = alice.receive([b"/quit lunch", b"after"])
    assert effects == [Reply("bye"), Close("lunch")]
    assert alice.closed
    assert alice.receive([b"more"]) == []


def test_an_overlong_nickname_gets_the_error_and_the_prompt_again() -> None:
    effects = new_session(Registry()).receive([None])
    assert effects == [Send(b"*** error: line too long (limit 100 bytes)\n" + NICK_PROMPT)]


def test_an_overlong_password_gets_the_password_prompt_again() -> None:
    effects = new_session(Registry(), password="pw").receive([None])
    assert effects == [Send(b"*** error: line too long (limit 100 bytes)\nPassword: ")]


def test_overlong_lines_count_against_the_unregistered_cap() -> None:
    effects = new_session(Registry(), max_lines=3).receive([None, b"a b", None, None])
    assert effects[-1] == Close("unregistered lines", refusal="unregistered_lines")


def test_an_http_request_is_refused_with_its_reason() -> None:
    session = new_session(Registry())
    effects = session.receive([b"GET / HTTP/1.1", b"Host: x"])
    assert effects == [
        Send(b"*** this is a chat server, not an HTTP server\n"),
        Close("http", refusal="http"),
    ]


def test_a_wrong_password_waits_then_refuses() -> None:
    session = new_session(Registry(), password="s3cret")
    assert session.receive([b"guess"]) == [
        Pause(1.0),
        Send(b"*** wrong password\n"),
        Close("wrong password", refusal="wrong_password"),
    ]


def test_the_right_password_leads_to_the_nick_prompt() -> None:
    registry: Registry[Member] = Registry()
    session = new_session(registry, password="s3cret")
    assert session.receive([b"s3cret"]) == [Send(NICK_PROMPT, lines=0)]
    assert session.receive([b"alice"])[0] == Registered("alice")


def test_leaving_frees_the_nick_and_tells_the_room_why() -> None:
    registry: Registry[Member] = Registry()
    registered(registry, "bob")
    alice = registered(registry, "alice")
    room = registry.room_of("alice")
    assert alice.leave("idle") == [ToShared((room,), Quit("alice", "idle"))]
    assert registry.get("alice") is None
    assert new_session(Registry()).leave(None) == []


@given(
    lines=st.lists(st.binary(max_size=12).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=20),
    cuts=st.lists(st.integers(0, 20), max_size=5),
)
def test_how_lines_are_split_into_calls_never_changes_what_is_said(
    lines: list[bytes], cuts: list[int]
) -> None:
    """A failure would mean the relayed text depends on TCP segmentation."""

    def said(chunks: list[list[bytes]]) -> list[bytes]:
        registry: Registry[Member] = Registry()
        alice = registered(registry, "alice")
        out: list[bytes] = []
        for chunk in chunks:
            for effect in alice.receive(list(chunk)):
                if isinstance(effect, ToRoom) and isinstance(effect.event, Said):
                    out += effect.event.lines
        return out

    chat = [b"x" + line if line.startswith(b"/") else line for line in lines]
    bounds = sorted({0, len(chat), *(c for c in cuts if c <= len(chat))})
    chunks = [chat[a:b] for a, b in itertools.pairwise(bounds)]
    assert said(chunks) == said([chat])


def test_a_server_banned_user_is_refused_at_registration_and_closed() -> None:
    registry: Registry[Member] = Registry()
    registry.server_bans, _ = registry.server_bans.add("*@203.0.113.*", "root", "spam", 0.0)
    session = Session(Member("m"), registry, Gate(None, 50), max_line_bytes=100, address="203.0.113.9")
    effects = session.receive([b"bob"])
    assert effects == [
        Send(b"*** you are banned from this server (spam)\n"),
        Close("banned from the server", refusal="server_ban"),
    ]
    assert session.closed
    assert registry.get("bob") is None


def test_in_a_moderated_room_a_voiceless_line_is_refused_and_goes_nowhere() -> None:
    registry: Registry[Member] = Registry()
    alice, bob = registered(registry, "alice"), registered(registry, "bob")
    for session in (alice, bob):
        session.receive([b"/join #dev"])
    alice.receive([b"/mode +m"])
    assert bob.receive([b"hello?"]) == [Reply("#dev is moderated: you cannot speak")]
    assert [type(e) for e in alice.receive([b"I can"])] == [ToRoom]


def test_a_kicked_line_user_is_told_and_moved_to_the_lobby() -> None:
    registry: Registry[Member] = Registry()
    alice, bob = registered(registry, "alice"), registered(registry, "bob")
    for session in (alice, bob):
        session.receive([b"/join #dev"])
    effects = alice.receive([b"/kick bob bye"])
    removed = [e for e in effects if isinstance(e, Removed)]
    assert len(removed) == 1
    seen = bob.removed(removed[0].event)
    assert seen[0] == Send(b"*** you were kicked from #dev by alice (bye)\n")
    assert Reply("you joined #lobby") in seen
    assert bob.room is not None
    assert bob.room.name == "lobby"
    assert registry.rooms_of("bob") == (bob.room,)


def test_oper_asks_the_shell_and_its_answer_grants_or_refuses() -> None:
    registry: Registry[Member] = Registry()
    bob = registered(registry, "bob")
    (asked,) = bob.receive([b"/oper root s3cret"])
    assert asked == Authenticate("root", "s3cret")
    assert "s3cret" not in repr(asked)
    assert bob.opered(None) == [Reply("wrong operator name or password")]
    assert bob.opered(None, exhausted=True) == [
        Reply("too many failed attempts from your address; try again later")
    ]
    assert bob.oper is None
    assert bob.opered("root") == [Reply("you are now a server operator")]
    assert bob.oper == "root"
    assert bob.receive([b"/gbans"]) == [Reply("no server bans")]
