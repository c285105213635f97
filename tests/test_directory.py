"""The registry with a ``Directory`` (the cluster-wide view): pure, with a fake directory."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest

from gevent_chat.core import chat, codec, commands, records
from gevent_chat.core.effects import Reply, Send
from gevent_chat.core.errors import Banned, NickTaken, NoSuchNick
from gevent_chat.core.events import Private, Said
from gevent_chat.core.masks import parse_mask
from gevent_chat.core.protocol import name_key
from gevent_chat.core.registry import Registry
from gevent_chat.core.rooms import HistoryEntry
from gevent_chat.core.roomstate import Ban, RoomState, Topic
from gevent_chat.core.serverbans import ServerBan


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
        self.creators: dict[str, str] = {}  # folded room -> folded nick: decided once
        self.kept: dict[str, RoomState] = {}  # folded room -> the rules "every server" holds
        self.recorded: list[tuple[str, records.Changes]] = []
        self.server_bans: list[tuple[ServerBan, bool]] = []
        self.killed: list[tuple[str, str]] = []

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

    def create(self, room: str, nick: str) -> bool | None:
        self._call("create", room, nick)
        if not self.up:
            return None
        return self.creators.setdefault(name_key(room), name_key(nick)) == name_key(nick)

    def rules(self, room: str) -> RoomState | None:
        self._call("rules", room)
        return self.kept.get(name_key(room)) if self.up else None

    def record(self, room: str, changes: records.Changes) -> None:
        self.recorded.append((room, changes))

    def server_ban(self, ban: ServerBan, added: bool) -> None:
        self.server_bans.append((ban, added))

    def kill(self, nick: str, reason: str) -> bool | None:
        if not self.up:
            return None
        self.killed.append((nick, reason))
        return name_key(nick) in self.elsewhere

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
        ("rules", "lobby"),  # the lobby has no creator, but maybe rules set elsewhere
        ("enter", "alice", "lobby"),
        ("claim", "Alicia"),
        ("enter", "Alicia", "lobby"),  # first, so the room stays subscribed
        ("leave", "alice", "lobby"),
        ("release", "alice"),
        ("create", "dev", "Alicia"),
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


def test_a_rooms_creator_is_decided_by_the_directory_once_for_every_server() -> None:
    registry, directory = _registry()
    directory.creators["dev"] = "zoe"  # another server's user won the race for #dev
    registry.add("alice", Member("alice"), "dev")
    registry.add("bob", Member("bob"), "ops")
    dev, ops = registry.room("dev"), registry.room("ops")
    assert dev is not None
    assert ops is not None
    assert not dev.state.is_operator("alice")
    assert ops.state.is_operator("bob")


def test_a_server_s_first_user_of_a_room_held_elsewhere_gets_its_rules() -> None:
    registry, directory = _registry()
    directory.creators["dev"] = "zoe"
    spam = Ban(parse_mask("spam*"), "zoe", 1.0)
    directory.kept["dev"] = RoomState("dev", topic=Topic("release day", "zoe", 1.0), bans=(spam,))
    registry.add("alice", Member("alice"))
    registry.add("spammer", Member("spammer"))
    with pytest.raises(Banned):
        chat.move(registry, "spammer", "dev")
    chat.move(registry, "alice", "dev")
    dev = registry.room("dev")
    assert dev is not None
    assert dev.state.topic == Topic("release day", "zoe", 1.0)
    assert dev.state.banned("spammer", None) == spam


def test_kill_of_a_user_on_another_server_asks_the_directory() -> None:
    registry, directory = _registry()
    directory.elsewhere.add("bob")
    alice = Member("alice")
    room = registry.add("alice", alice)
    assert room is not None
    ctx = commands.Context("alice", alice, room, registry, oper=True)
    assert commands.run("/kill bob go away", ctx) == [Reply("you disconnected bob")]
    assert directory.killed == [("bob", "go away")]
    assert commands.run("/kill nobody", ctx) == [Reply(str(NoSuchNick("nobody")))]


def test_server_bans_are_shared_with_the_directory() -> None:
    registry, directory = _registry()
    alice = Member("alice")
    room = registry.add("alice", alice)
    assert room is not None
    ctx = commands.Context("alice", alice, room, registry, oper=True)
    commands.run("/gban spam* flooding", ctx)
    commands.run("/gunban spam*", ctx)
    assert [(b.mask.text, b.reason, added) for b, added in directory.server_bans] == [
        ("spam*", "flooding", True),
        ("spam*", "flooding", False),
    ]


def test_a_room_s_record_reads_back_as_the_same_rules() -> None:
    state = RoomState(
        "dev",
        topic=Topic("release day", "alice", 5.0),
        operators=frozenset({"alice"}),
        voiced=frozenset({"bob"}),
        flags=frozenset("tmi"),
        key="sesame",
        limit=12,
        bans=(Ban(parse_mask("spam*"), "alice", 1.0), Ban(parse_mask("*@10.0.0.*"), "alice", 2.0)),
        invites=("carol",),
    )
    assert records.load("dev", records.fields(state)) == (state, 0)
    junk = {**records.fields(state), "ban:": "x", "topic": "[1", "limit": "-3", "mode:q": "+"}
    assert records.load("dev", junk)[1] == 4
