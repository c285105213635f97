"""The pure IRC session: lines in, effects out, with plain calls (no sockets)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from irctokens.line import tokenise

from gevent_chat.core.effects import Close, Effect, Registered, Send, ToRoom, ToShared
from gevent_chat.core.events import Joined, Quit, Said
from gevent_chat.core.irc.profiles import Profiles
from gevent_chat.core.irc.render import Renderers
from gevent_chat.core.irc.session import IrcSession, ServerInfo
from gevent_chat.core.lines import RENDERER
from gevent_chat.core.registry import Registry


class Member:
    """What the registry holds; the session sets its renderer."""

    def __init__(self) -> None:
        self.renderer: Any = RENDERER
        self.nick: str | None = None


def info(password: str | None = None) -> ServerInfo:
    profiles = Profiles()
    return ServerInfo(
        name="srv",
        network="net",
        version="v1",
        created="today",
        motd=None,
        profiles=profiles,
        renderers=Renderers("srv", profiles.masks),
        clock=lambda: 1_800_000_000.0,
        password=password,
        password_delay=0.0,
    )


def session(registry: Registry[Any], server: ServerInfo | None = None) -> IrcSession[Any]:
    return IrcSession(Member(), registry, server or info(), "10.0.0.1", "cloak")


def sent(effects: list[Effect]) -> list[list[str]]:
    """The command and parameters of every line sent to the caller."""
    out = []
    for effect in effects:
        if isinstance(effect, Send):
            for raw in effect.data.split(b"\r\n")[:-1]:
                msg = tokenise(raw.decode())
                out.append([msg.command, *msg.params])
    return out


def registered(registry: Registry[Any], nick: str) -> IrcSession[Any]:
    s = session(registry)
    s.receive([f"NICK {nick}".encode(), f"USER {nick} 0 * :{nick}".encode()])
    assert s.nick == nick
    s.member.nick = nick
    return s


def test_registration_needs_nick_and_user_and_joins_no_room() -> None:
    registry: Registry[Any] = Registry()
    s = session(registry)
    assert s.receive([b"NICK bob"]) == []
    effects = s.receive([b"USER bob 0 * :Bob B"])
    assert effects[0] == Registered("bob")
    assert sent(effects)[0][:2] == ["001", "bob"]
    assert registry.rooms_of("bob") == ()


def test_cap_ls_holds_registration_until_cap_end() -> None:
    s = session(Registry())
    s.receive([b"CAP LS 302", b"NICK bob", b"USER bob 0 * :Bob"])
    assert s.nick is None
    assert Registered("bob") in s.receive([b"CAP END"])


def test_wrong_password_is_464_then_error_and_close() -> None:
    s = session(Registry(), info(password="pw"))
    effects = s.receive([b"PASS nope", b"NICK bob", b"USER bob 0 * :Bob"])
    assert [line[0] for line in sent(effects)] == ["464", "ERROR"]
    assert any(isinstance(e, Close) and e.refusal == "wrong_password" for e in effects)
    assert s.nick is None


def test_join_is_echoed_to_the_joiner_and_told_to_the_room() -> None:
    registry: Registry[Any] = Registry()
    alice = registered(registry, "alice")
    alice.receive([b"JOIN #dev"])
    bob = registered(registry, "bob")
    effects = bob.receive([b"JOIN #dev"])
    room = registry.room("dev")
    assert ToRoom(room, Joined("dev", "bob")) in effects  # type: ignore[arg-type]
    assert sent(effects) == [
        ["JOIN", "#dev"],
        ["353", "bob", "=", "#dev", "@alice bob"],  # alice made the room: its operator
        ["366", "bob", "#dev", "End of /NAMES list"],
    ]


@given(st.lists(st.from_regex(r"[a-z][a-z ]{0,20}[a-z]", fullmatch=True), min_size=1, max_size=30))
def test_a_burst_to_one_room_is_one_said(texts: list[str]) -> None:
    """A burst of plain PRIVMSGs costs one fan-out, lines in order."""
    registry: Registry[Any] = Registry()
    bob = registered(registry, "bob")
    bob.receive([b"JOIN #dev"])
    effects = bob.receive([f"PRIVMSG #dev :{t}".encode() for t in texts])
    said = [e for e in effects if isinstance(e, ToRoom)]
    assert len(said) == 1
    assert said[0].event == Said("dev", "bob", tuple(t.encode() for t in texts))


def test_privmsg_to_a_room_one_is_not_in_is_refused_like_a_missing_one() -> None:
    registry: Registry[Any] = Registry()
    bob = registered(registry, "bob")
    assert sent(bob.receive([b"PRIVMSG #nowhere :hi"]))[0][:2] == ["403", "bob"]


def test_leaving_quits_once_for_all_shared_rooms() -> None:
    registry: Registry[Any] = Registry()
    bob = registered(registry, "bob")
    bob.receive([b"JOIN #a,#b"])
    effects = bob.leave("gone")
    assert len(effects) == 1
    assert isinstance(effects[0], ToShared)
    assert effects[0].event == Quit("bob", "gone")
    assert registry.get("bob") is None


def test_each_effect_goes_to_the_room_as_it_was_when_decided() -> None:
    """Two KICKs in one chunk: the first is seen by the second's target, kicked only after."""
    registry: Registry[Any] = Registry()
    foo = registered(registry, "foo")
    foo.receive([b"JOIN #chan"])
    bar = registered(registry, "bar")
    bar.receive([b"JOIN #chan"])
    effects = foo.receive([b"KICK #chan bar", b"PART #chan"])
    kick, part = [e for e in effects if isinstance(e, ToRoom)]
    assert foo.member in kick.members
    assert foo.member not in part.members
    assert bar.member not in kick.members  # kicked: told by Removed, not by the room
