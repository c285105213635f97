"""What every protocol's users can do (``core.chat``), and a registry where a user is in several rooms."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gevent_chat.core import chat
from gevent_chat.core.config import parse_args
from gevent_chat.core.effects import ToRoom, ToShared, ToUser
from gevent_chat.core.errors import (
    CannotJoin,
    CannotSend,
    ClientError,
    ConfigError,
    InviteOnly,
    Moderated,
    NoSuchNick,
    NoSuchRoom,
    NotInRoom,
    TooManyRooms,
)
from gevent_chat.core.events import Joined, Kind, NickChanged, Parted, Private, Quit, Said
from gevent_chat.core.modes import parse_changes
from gevent_chat.core.registry import Registry
from gevent_chat.core.rooms import Room


@dataclass(eq=False)
class Member:
    nick: str


def registry_of(*nicks: str, max_rooms: int = 20) -> tuple[Registry[Member], dict[str, Member]]:
    registry: Registry[Member] = Registry(history_size=3, max_rooms=max_rooms)
    members = {nick: Member(nick) for nick in nicks}
    for nick, member in members.items():
        registry.add(nick, member, room=None)
    return registry, members


def test_a_user_may_be_registered_in_no_room_then_join_several_in_order() -> None:
    registry, m = registry_of("alice", "bob")
    assert registry.rooms_of("alice") == ()
    assert registry.rooms() == []
    with pytest.raises(KeyError):
        registry.room_of("alice")
    dev, effects = chat.join(registry, "alice", "#dev")
    assert effects == [ToRoom(dev, Joined("dev", "alice"))]
    ops, _ = chat.join(registry, "alice", "Ops")
    chat.join(registry, "bob", "dev")
    assert registry.rooms_of("ALICE") == (dev, ops)
    assert registry.room_of("alice") is dev
    assert dev.members == (m["alice"], m["bob"])
    assert ops.members == (m["alice"],)


def test_joining_twice_or_past_the_limit_is_refused_with_what_irc_needs() -> None:
    registry, _ = registry_of("alice", max_rooms=2)
    chat.join(registry, "alice", "one")
    with pytest.raises(chat.AlreadyInRoom) as again:
        chat.join(registry, "alice", "ONE")
    assert str(again.value) == "you are already in #one"
    chat.join(registry, "alice", "two")
    with pytest.raises(TooManyRooms) as err:
        chat.join(registry, "alice", "three")
    assert (err.value.room, err.value.limit) == ("three", 2)
    assert str(err.value) == "cannot join #three: you are in too many rooms (limit 2)"
    assert registry.room("three") is None
    with pytest.raises(ClientError, match="invalid room name"):
        chat.join(registry, "alice", "two words")


def test_the_join_hook_sees_the_room_and_refuses_before_anything_changes() -> None:
    registry, _ = registry_of("alice", "bob")
    chat.join(registry, "alice", "dev")
    seen: list[tuple[Room[Member] | None, str]] = []

    def invite_only(room: Room[Member] | None, nick: str) -> None:
        seen.append((room, nick))
        if room is not None:
            raise CannotJoin(room.name, "invite", "invitation only")

    with pytest.raises(CannotJoin) as err:
        chat.join(registry, "bob", "dev", invite_only)
    assert err.value.why == "invite"
    assert str(err.value) == "cannot join #dev: invitation only"
    assert registry.rooms_of("bob") == ()
    room, _ = chat.join(registry, "bob", "new", invite_only)  # a new room: the hook allows it
    assert seen == [(registry.room("dev"), "bob"), (None, "bob")]
    assert registry.rooms_of("bob") == (room,)


def test_part_tells_the_room_and_a_room_nobody_is_in_is_forgotten() -> None:
    registry, m = registry_of("alice", "bob")
    dev, _ = chat.join(registry, "alice", "dev")
    chat.join(registry, "bob", "dev")
    assert chat.part(registry, "bob", "#DEV", "bye") == [ToRoom(dev, Parted("dev", "bob", "bye"))]
    assert dev.members == (m["alice"],)
    with pytest.raises(NotInRoom) as err:
        chat.part(registry, "bob", "dev")
    assert err.value.room == "dev"
    with pytest.raises(NoSuchRoom):
        chat.part(registry, "bob", "nowhere")
    chat.part(registry, "alice", "dev")
    assert registry.room("dev") is None


def test_say_to_a_room_checks_it_exists_and_the_send_hook() -> None:
    registry, _ = registry_of("alice", "bob")
    dev, _ = chat.join(registry, "alice", "dev")
    effect = chat.say_to(registry, "alice", "DEV", [b"hi"], Kind.NOTICE)
    assert effect == ToRoom(dev, Said("dev", "alice", (b"hi",), Kind.NOTICE))
    with pytest.raises(NoSuchRoom):
        chat.say_to(registry, "alice", "ops", [b"hi"])

    def moderated(room: Room[Member], nick: str) -> None:
        raise CannotSend(room.name, "the room is moderated")

    chat.join(registry, "bob", "dev")
    with pytest.raises(CannotSend, match="cannot send to #dev: the room is moderated"):
        chat.say_to(registry, "bob", "dev", [b"hi"], check=moderated)


def test_say_to_a_room_refuses_outsiders_under_plus_n_and_the_voiceless_under_plus_m() -> None:
    registry, _ = registry_of("alice", "bob")
    dev, _ = chat.join(registry, "alice", "dev")
    with pytest.raises(CannotSend, match="cannot send to #dev: you are not in #dev") as outside:
        chat.say_to(registry, "bob", "dev", [b"hi"])
    assert outside.value.room == "dev"
    dev.state = dev.state.change_modes("alice", parse_changes(["-n"]), lambda n: None, 0.0)[0]
    chat.say_to(registry, "bob", "dev", [b"from outside"])
    dev.state = dev.state.change_modes("alice", parse_changes(["+m"]), lambda n: None, 0.0)[0]
    with pytest.raises(Moderated, match="#dev is moderated: you cannot speak") as moderated:
        chat.say_to(registry, "bob", "dev", [b"hi"])
    assert moderated.value.why == "moderated"
    chat.say_to(registry, "alice", "dev", [b"the creator runs it"])
    chat.say_to(registry, "bob", "dev", [b"a server operator"], oper=True)


def test_join_applies_the_room_rules_and_the_creator_runs_the_room() -> None:
    registry, _ = registry_of("alice", "bob", "carol")
    dev, _ = chat.join(registry, "alice", "dev")
    assert dev.state.is_operator("alice")
    dev.state = dev.state.change_modes("alice", parse_changes(["+ik", "k3y"]), lambda n: None, 0.0)[0]
    with pytest.raises(InviteOnly):
        chat.join(registry, "bob", "dev")
    dev.state, _ = dev.state.invite("alice", "bob")
    chat.join(registry, "bob", "dev")
    assert not dev.state.is_operator("bob")
    chat.join(registry, "carol", "dev", oper=True)  # a server operator passes every rule
    chat.part(registry, "alice", "dev")
    assert not dev.state.is_operator("alice")


def test_quit_and_rename_reach_every_room_the_user_is_in_as_one_effect() -> None:
    registry, _ = registry_of("alice", "bob")
    dev, _ = chat.join(registry, "alice", "dev")
    ops, _ = chat.join(registry, "alice", "ops")
    assert chat.rename(registry, "alice", "al") == [ToShared((dev, ops), NickChanged("alice", "al"))]
    assert chat.quit(registry, "al", "lunch") == [ToShared((dev, ops), Quit("al", "lunch"))]
    assert registry.get("al") is None
    assert registry.rooms() == []
    assert chat.quit(registry, "bob") == []  # in no room: nobody to tell


def test_private_messages_find_the_user_or_say_who_is_missing() -> None:
    registry, m = registry_of("alice", "Bob")
    spelled, effects = chat.private(registry, "alice", "bob", "hi\x1b[2J", Kind.ME)
    assert spelled == "Bob"
    assert effects == [ToUser(m["Bob"], Private("alice", "Bob", "hi", Kind.ME))]
    with pytest.raises(NoSuchNick) as err:
        chat.private(registry, "alice", "zoe", "hi")
    assert err.value.nick == "zoe"
    with pytest.raises(NoSuchNick, match="no such user: ab"):
        chat.private(registry, "alice", "a\x1b[2Jb", "hi")


def test_max_rooms_per_user_is_a_limit_of_the_config() -> None:
    assert parse_args([]).max_rooms_per_user == 20
    assert parse_args(["--max-rooms-per-user", "3"]).max_rooms_per_user == 3
    with pytest.raises(ConfigError, match="--max-rooms-per-user"):
        parse_args(["--max-rooms-per-user", "0"])
