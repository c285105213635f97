"""Running a room (``core.moderation``): the shared operations IRC and the line protocol call."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gevent_chat.core import chat, moderation
from gevent_chat.core.effects import Removed, ToRoom, ToUser
from gevent_chat.core.errors import (
    BadMask,
    Banned,
    NoSuchNick,
    NoSuchRoom,
    NotInRoom,
    NotOperator,
    UnknownMode,
    UserNotInRoom,
)
from gevent_chat.core.events import Invited, Kicked, ModeChanged, TopicSet
from gevent_chat.core.registry import Registry


@dataclass(eq=False)
class Member:
    nick: str
    address: str = "192.0.2.1"


def dev_with(*nicks: str) -> tuple[Registry[Member], dict[str, Member]]:
    """A registry where ``nicks`` joined #dev in order (the first created it)."""
    registry: Registry[Member] = Registry()
    members = {nick: Member(nick, f"192.0.2.{i}") for i, nick in enumerate(nicks, 1)}
    for nick, member in members.items():
        registry.add(nick, member, room=None)
        chat.join(registry, nick, "dev")
    return registry, members


def test_set_topic_needs_the_room_and_membership_and_tells_the_room() -> None:
    registry, _ = dev_with("alice", "bob")
    registry.add("zed", Member("zed"), room=None)
    event, effects = moderation.set_topic(registry, "alice", "#dev", "ship it", 10.0)
    dev = registry.room("dev")
    assert dev is not None
    assert event == TopicSet("dev", "alice", "ship it")
    assert effects == [ToRoom(dev, event)]
    assert dev.state.topic is not None
    assert dev.state.topic.time == 10.0
    with pytest.raises(NotOperator):
        moderation.set_topic(registry, "bob", "dev", "mine", 11.0)
    with pytest.raises(NotInRoom):
        moderation.set_topic(registry, "zed", "dev", "outsider", 11.0)
    with pytest.raises(NoSuchRoom):
        moderation.set_topic(registry, "alice", "nowhere", "x", 11.0)
    moderation.set_topic(registry, "zed", "dev", "a server operator may, from outside", 12.0, oper=True)


def test_kick_takes_the_user_out_and_tells_them_and_the_room() -> None:
    registry, m = dev_with("alice", "bob", "carol")
    dev = registry.room("dev")
    assert dev is not None
    event, effects = moderation.kick(registry, "alice", "dev", "BOB", "spam")
    assert event == Kicked("dev", "bob", "alice", "spam")
    assert effects == [ToRoom(dev, event), Removed(m["bob"], event)]
    assert not registry.is_in("bob", "dev")
    with pytest.raises(UserNotInRoom):
        moderation.kick(registry, "alice", "dev", "bob", None)
    with pytest.raises(NotOperator):
        moderation.kick(registry, "carol", "dev", "alice", None)
    assert registry.is_in("alice", "dev")


def test_a_new_ban_kicks_the_members_it_matches_but_not_operators() -> None:
    registry, m = dev_with("alice", "spam1", "spam2", "carol")
    moderation.change_modes(registry, "alice", "dev", ["+o", "spam2"], 0.0)
    event, effects = moderation.change_modes(registry, "alice", "dev", ["+b", "spam*"], 1.0)
    assert event == ModeChanged("dev", "alice", (("+b", "spam*"),))
    assert [e.member for e in effects if isinstance(e, Removed)] == [m["spam1"]]
    with pytest.raises(Banned):
        chat.join(registry, "spam1", "dev", address="192.0.2.2")
    _, effects = moderation.change_modes(registry, "alice", "dev", ["+b", "*@192.0.2.4"], 2.0)
    assert [e.member for e in effects if isinstance(e, Removed)] == [m["carol"]]


def test_a_refused_mode_change_changes_nothing() -> None:
    registry, _ = dev_with("alice", "bob")
    dev = registry.room("dev")
    assert dev is not None
    before = dev.state
    for words, error in (
        (["+m", "+x"], UnknownMode),
        (["+mb", "a b"], BadMask),
        (["+mo", "zed"], UserNotInRoom),
    ):
        with pytest.raises(error):
            moderation.change_modes(registry, "alice", "dev", words, 0.0)
    assert dev.state is before
    assert moderation.change_modes(registry, "alice", "dev", ["+t"], 0.0) == (None, [])


def test_invite_reaches_the_invitee_alone() -> None:
    registry, m = dev_with("alice", "bob")
    invitee = Member("carol")
    registry.add("carol", invitee, room=None)
    event, effects = moderation.invite(registry, "bob", "dev", "Carol")
    assert event == Invited("dev", "carol", "bob")
    assert effects == [ToUser(invitee, event)]
    with pytest.raises(moderation.UserInRoom):
        moderation.invite(registry, "bob", "dev", "alice")
    with pytest.raises(NoSuchNick):
        moderation.invite(registry, "bob", "dev", "nobody")
    assert m["alice"] in registry


def test_events_from_another_server_bring_this_copy_of_the_room_in_line() -> None:
    origin, _ = dev_with("alice", "bob")
    here, m = dev_with("carol", "spammer", "dave")
    dev = here.room("dev")
    assert dev is not None
    topic, _ = moderation.set_topic(origin, "alice", "dev", "from afar", 5.0)
    modes = ModeChanged("dev", "alice", (("+m", None), ("+v", "dave")))  # dave is on this server
    ban, _ = moderation.change_modes(origin, "alice", "dev", ["+b", "spam*"], 7.0)
    assert ban is not None
    assert moderation.apply_remote(here, dev, topic, 8.0) == []
    assert dev.state.topic is not None
    assert (dev.state.topic.text, dev.state.topic.nick) == ("from afar", "alice")
    assert moderation.apply_remote(here, dev, modes, 8.0) == []
    assert "m" in dev.state.flags
    assert dev.state.is_voiced("dave")
    effects = moderation.apply_remote(here, dev, ban, 8.0)  # the ban kicks this server's spammer
    assert [e.member for e in effects if isinstance(e, Removed)] == [m["spammer"]]
    assert not here.is_in("spammer", "dev")
    kicked = Kicked("dev", "dave", "alice", "bye")
    assert moderation.apply_remote(here, dev, kicked, 9.0) == [Removed(m["dave"], kicked)]
    assert not here.is_in("dave", "dev")
    assert not dev.state.is_voiced("dave")
