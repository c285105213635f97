"""The command layer as plain function calls: effects, not sockets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gevent_chat.core import commands
from gevent_chat.core.effects import Close, Moved, Renamed, Reply, Send, ToRoom, ToShared, ToUser
from gevent_chat.core.events import Joined, NickChanged, Parted, Private, Said
from gevent_chat.core.registry import Registry


@dataclass(eq=False)
class Member:
    nick: str


def setup(*nicks: str) -> tuple[Registry[Member], dict[str, Member]]:
    registry: Registry[Member] = Registry(history_size=5)
    members = {nick: Member(nick) for nick in nicks}
    for nick, member in members.items():
        registry.add(nick, member)
    return registry, members


def run(registry: Registry[Member], member: Member, line: str) -> list[commands.Effect]:
    ctx = commands.Context(member.nick, member, registry.room_of(member.nick), registry)
    return commands.run(line, ctx)


def test_command_names_are_case_insensitive() -> None:
    registry, m = setup("alice")
    assert run(registry, m["alice"], "/PiNg x") == [Reply("pong x")]


def test_missing_arguments_give_usage() -> None:
    registry, m = setup("alice")
    assert run(registry, m["alice"], "/msg bob") == [Reply("usage: /msg NICK TEXT: send a private message")]


def test_msg_keeps_the_whole_text_and_finds_nick_case_insensitively() -> None:
    registry, m = setup("alice", "Bob")
    effects = run(registry, m["alice"], "/msg bob  two  spaces ")
    assert effects == [
        ToUser(m["Bob"], Private("alice", "Bob", "two  spaces ")),
        Send(b"-> *Bob* two  spaces \n"),
    ]


def test_msg_text_is_sanitised() -> None:
    registry, m = setup("alice", "bob")
    effects = run(registry, m["alice"], "/msg bob \x1b]0;pwned\x07hi\x1b[2J")
    assert effects[0] == ToUser(m["bob"], Private("alice", "bob", "hi"))


def test_nick_renames_in_registry() -> None:
    registry, m = setup("alice", "bob")
    room = registry.room_of("alice")
    effects = run(registry, m["alice"], "/nick Al")
    assert effects == [
        Renamed("Al", "alice"),
        Reply("you are now known as Al"),
        ToShared((room,), NickChanged("alice", "Al")),
    ]
    assert registry.get("al") is m["alice"]
    assert registry.get("alice") is None


def test_nick_can_change_only_its_case() -> None:
    registry, m = setup("alice")
    assert run(registry, m["alice"], "/nick ALICE")[0] == Renamed("ALICE", "alice")


def test_nick_with_two_words_is_invalid() -> None:
    registry, m = setup("alice")
    [reply] = run(registry, m["alice"], "/nick a b")
    assert isinstance(reply, Reply)
    assert "invalid" in reply.text


def test_join_moves_and_returns_history_of_new_room() -> None:
    registry, m = setup("alice", "bob")
    run(registry, m["bob"], "/join dev")
    registry.room_of("bob").remember(0.0, Said("dev", "bob", (b"hello",)))
    lobby = registry.room_of("alice")
    effects = run(registry, m["alice"], "/join #DEV")
    dev = registry.room_of("alice")
    assert dev.name == "dev"
    assert effects[0] == Moved(dev)
    assert Reply("you joined #dev") in effects
    assert effects[-2:] == [ToRoom(lobby, Parted("lobby", "alice")), ToRoom(dev, Joined("dev", "alice"))]
    [replay] = [e for e in effects if isinstance(e, Send)]
    assert replay.data.endswith(b"] bob: hello\n")
    assert replay.lines == 1


def test_join_queues_the_joiners_own_lines_before_any_room_notice() -> None:
    """Delivering a room notice may wait for a full recipient, and other
    greenlets run meanwhile: a line said in the new room then would reach
    the joiner before its "you joined" and again in the history replay."""
    registry, m = setup("alice", "bob")
    run(registry, m["bob"], "/join dev")
    registry.room_of("bob").remember(0.0, Said("dev", "bob", (b"hello",)))
    effects = run(registry, m["alice"], "/join dev")
    own = [i for i, e in enumerate(effects) if isinstance(e, Reply | Send)]
    notices = [i for i, e in enumerate(effects) if isinstance(e, ToRoom)]
    assert own
    assert notices
    assert max(own) < min(notices), effects


def test_join_the_room_you_are_in_is_refused() -> None:
    registry, m = setup("alice")
    assert run(registry, m["alice"], "/join #Lobby") == [Reply("you are already in #lobby")]


@pytest.mark.parametrize("reason", ["", " lunch"])
def test_quit_says_bye_then_closes(reason: str) -> None:
    registry, m = setup("alice")
    assert run(registry, m["alice"], f"/quit{reason}") == [Reply("bye"), Close(reason.strip() or None)]


def test_who_splits_long_lists() -> None:
    nicks = [f"u{i:03}" for i in range(commands.NAMES_PER_LINE + 5)]
    registry, m = setup(*nicks)
    effects = run(registry, m["u000"], "/who")
    assert len(effects) == 2
    assert all(isinstance(e, Reply) and e.text.startswith(f"{len(nicks)} users in #lobby: ") for e in effects)


def test_unknown_command() -> None:
    registry, m = setup("alice")
    assert run(registry, m["alice"], "/") == [Reply("unknown command: / (try /help)")]


@pytest.mark.parametrize("line", ["/msg a\x1b[2Jb hi", "/fo\x1b]0;x\x07o"])
def test_replies_never_echo_control_bytes(line: str) -> None:
    registry, m = setup("alice")
    [reply] = run(registry, m["alice"], line)
    assert isinstance(reply, Reply)
    assert "\x1b" not in reply.text
    assert "\x07" not in reply.text
