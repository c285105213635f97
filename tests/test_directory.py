"""The registry with a ``Directory`` (the cluster-wide view): pure, with a fake directory."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest

from gevent_chat.core import codec, commands
from gevent_chat.core.effects import Reply, Send
from gevent_chat.core.errors import NickTaken
from gevent_chat.core.events import Private, Said
from gevent_chat.core.protocol import name_key
from gevent_chat.core.registry import Registry
from gevent_chat.core.rooms import HistoryEntry


class Lock:
    """A lock that knows whether it is held."""

    def __init__(self) -> None:
        self.held = False

    def __enter__(self) -> None:
        self.held = True

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.held = False


class FakeDirectory:
    """Nicks held by "other servers" in ``elsewhere``; every call recorded; fails if called under the lock."""

    def __init__(self, lock: Lock) -> None:
        self.lock = lock
        self.elsewhere: set[str] = set()
        self.calls: list[tuple[str, ...]] = []
        self.up = True
        self.sent: list[tuple[str, bytes]] = []

    def _call(self, *what: str) -> None:
        assert not self.lock.held, f"{what} called with the registry's lock held"
        self.calls.append(what)

    def claim(self, nick: str) -> bool:
        self._call("claim", nick)
        return name_key(nick) not in self.elsewhere

    def release(self, nick: str) -> None:
        self._call("release", nick)

    def enter(self, nick: str, room: str) -> None:
        self._call("enter", nick, room)

    def leave(self, nick: str, room: str) -> None:
        self._call("leave", nick, room)

    def who(self, room: str) -> list[str] | None:
        return ["alice", "zoe"] if self.up else None

    def rooms(self) -> dict[str, int] | None:
        return {"lobby": 2, "Dev": 3} if self.up else None

    def history(self, room: str) -> list[HistoryEntry] | None:
        return [(0.0, Said("lobby", "zoe", (b"from elsewhere",)))] if self.up else None

    def private(self, nick: str, payload: bytes) -> bool | None:
        if not self.up:
            return None
        if name_key(nick) not in self.elsewhere:
            return False
        self.sent.append((nick, payload))
        return True


class Member:
    def __init__(self, nick: str) -> None:
        self.nick = nick


def _registry() -> tuple[Registry[Any], FakeDirectory]:
    lock = Lock()
    directory = FakeDirectory(lock)
    return Registry(lock, 10, directory), directory


def test_directory_is_told_of_every_change_outside_the_lock() -> None:
    registry, directory = _registry()
    registry.add("alice", Member("alice"))
    registry.rename("alice", "Alicia")
    registry.move("Alicia", "dev")
    registry.remove("alicia")
    assert directory.calls == [
        ("claim", "alice"),
        ("enter", "alice", "lobby"),
        ("claim", "Alicia"),
        ("enter", "Alicia", "lobby"),  # first, so the room stays subscribed
        ("leave", "alice", "lobby"),
        ("release", "alice"),
        ("leave", "Alicia", "lobby"),
        ("enter", "Alicia", "dev"),
        ("leave", "alicia", "dev"),
        ("release", "alicia"),
    ]


def test_nick_held_on_another_server_is_taken_and_nothing_changes() -> None:
    registry, directory = _registry()
    directory.elsewhere.add("bob")
    with pytest.raises(NickTaken):
        registry.add("Bob", Member("Bob"))
    registry.add("alice", Member("alice"))
    with pytest.raises(NickTaken):
        registry.rename("alice", "bob")
    assert registry.get("bob") is None
    assert registry.nick_of("alice") == "alice"
    assert ("release", "alice") not in directory.calls


def test_locally_taken_nick_is_refused_without_asking_the_directory() -> None:
    registry, directory = _registry()
    registry.add("alice", Member("alice"))
    directory.calls.clear()
    with pytest.raises(NickTaken):
        registry.add("ALICE", Member("ALICE"))
    assert directory.calls == []  # and above all no release: the claim is this server's


def test_case_only_rename_keeps_the_claim() -> None:
    registry, directory = _registry()
    registry.add("alice", Member("alice"))
    directory.calls.clear()
    registry.rename("alice", "Alice")
    assert ("release", "alice") not in directory.calls
    assert registry.nick_of("ALICE") == "Alice"


def test_who_rooms_history_and_counts_come_from_the_directory_and_fall_back_locally() -> None:
    registry, directory = _registry()
    alice = Member("alice")
    room = registry.add("alice", alice)
    room.remember(0.0, Said("lobby", "alice", (b"local",)))
    ctx = commands.Context("alice", alice, room, registry)
    assert commands.run("/who", ctx) == [Reply("2 users in #lobby: alice, zoe")]
    assert commands.run("/rooms", ctx) == [Reply("2 rooms: #Dev (3), #lobby (2)")]
    assert registry.users_online() == 5
    assert [e.data for e in commands.history(room, registry) if isinstance(e, Send)] == [
        b"[00:00] zoe: from elsewhere\n".replace(b"00:00", _hhmm(0.0))
    ]
    directory.up = False  # Redis down: this server's own view
    assert commands.run("/who", ctx) == [Reply("1 user in #lobby: alice")]
    assert commands.run("/rooms", ctx) == [Reply("1 room: #lobby (1)")]
    assert registry.users_online() == 1
    assert len(commands.history(room, registry)) == 1


def test_msg_to_a_user_on_another_server_goes_through_the_directory() -> None:
    registry, directory = _registry()
    alice = Member("alice")
    room = registry.add("alice", alice)
    directory.elsewhere.add("zoe")
    ctx = commands.Context("alice", alice, room, registry)
    assert commands.run("/msg zoe hi there", ctx) == [Send(b"-> *zoe* hi there\n")]
    assert directory.sent == [("zoe", codec.encode(Private("alice", "zoe", "hi there")))]
    assert commands.run("/msg nobody hi", ctx) == [Reply("no such user: nobody")]
    directory.up = False
    assert commands.run("/msg zoe hi", ctx) == [
        Reply("cannot reach zoe now: the other servers are out of reach")
    ]


def test_without_a_directory_nothing_changes() -> None:
    registry: Registry[Any] = Registry(None, 10)
    alice = Member("alice")
    room = registry.add("alice", alice)
    ctx = commands.Context("alice", alice, room, registry)
    assert registry.users_online() == 1
    assert registry.who(room) is None
    assert registry.room_counts() is None
    assert commands.run("/msg zoe hi", ctx) == [Reply("no such user: zoe")]


def _hhmm(when: float) -> bytes:
    from gevent_chat.core.lines import history

    return history([(when, Said("lobby", "x", (b"x",)))])[0][1:6]


def test_who_is_sorted_by_name_key_whatever_answers_it() -> None:
    registry, directory = _registry()
    alice = Member("alice")
    room = registry.add("alice", alice)
    assert room is not None
    directory.who = lambda room: ["zoe", "Bob", "alice"]  # type: ignore[method-assign]
    ctx = commands.Context("alice", alice, room, registry)
    assert commands.run("/who", ctx) == [Reply("3 users in #lobby: alice, Bob, zoe")]
    directory.up = False
    registry.add("Carol", Member("Carol"))
    registry.add("bob", Member("bob"))
    del directory.who
    assert commands.run("/who", ctx) == [Reply("3 users in #lobby: alice, bob, Carol")]
