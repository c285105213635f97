"""IRCv3 message-tags in the pure layer: client tags taken, carried on events, rendered per caps."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from irctokens.line import tokenise

from gevent_chat.core import codec
from gevent_chat.core.effects import Effect, Send, ToRoom, ToUser
from gevent_chat.core.events import Kind, Private, Said
from gevent_chat.core.irc.caps import SUPPORTED
from gevent_chat.core.irc.message import MAX_TAG_BYTES
from gevent_chat.core.irc.render import Renderers
from gevent_chat.core.lines import RENDERER
from gevent_chat.core.registry import Registry
from tests.test_irc_session import Member, info

WHEN = 1_800_000_000.0


def server() -> Any:
    count = itertools.count(1)
    return replace(info(), msgid=lambda: f"m{next(count)}")


def user(registry: Registry[Any], srv: Any, nick: str, caps: str = "") -> Any:
    from gevent_chat.core.irc.session import IrcSession

    s: IrcSession[Any] = IrcSession(Member(), registry, srv, "10.0.0.1", "cloak")
    lines = [f"CAP REQ :{caps}".encode(), b"CAP END"] if caps else []
    s.receive([*lines, f"NICK {nick}".encode(), f"USER {nick} 0 * :{nick}".encode()])
    assert s.nick == nick
    s.member.nick = nick
    s.receive([b"JOIN #room"])
    return s


def events(effects: list[Effect]) -> list[Any]:
    return [e.event for e in effects if isinstance(e, ToRoom | ToUser)]


def own_lines(effects: list[Effect]) -> list[bytes]:
    return [row for e in effects if isinstance(e, Send) for row in e.data.split(b"\r\n")[:-1]]


def test_message_tags_is_offered() -> None:
    assert "message-tags" in SUPPORTED


def test_client_only_tags_ride_on_the_event_with_a_msgid_and_server_tags_do_not() -> None:
    registry: Registry[Any] = Registry()
    alice = user(registry, server(), "alice", "message-tags")
    (said,) = events(alice.receive([b"@+draft/react=x;fizz=buzz;+a PRIVMSG #room :hi"]))
    assert said == Said(
        "room", "alice", (b"hi",), Kind.SAY, (("msgid", "m1"), ("+draft/react", "x"), ("+a", ""))
    )


def test_client_tags_are_dropped_from_a_sender_without_the_cap() -> None:
    registry: Registry[Any] = Registry()
    bob = user(registry, server(), "bob")
    (said,) = events(bob.receive([b"@+draft/react=x PRIVMSG #room :hi"]))
    assert said.tags == (("msgid", "m1"),)


def test_a_burst_with_differing_tags_is_one_said_per_line_with_its_own_tags() -> None:
    registry: Registry[Any] = Registry()
    alice = user(registry, server(), "alice", "message-tags")
    got = events(
        alice.receive(
            [
                b"PRIVMSG #room :one",
                b"PRIVMSG #room :two",
                b"@+k=1 PRIVMSG #room :three",
                b"@+k=2 PRIVMSG #room :four",
                b"PRIVMSG #room :five",
            ]
        )
    )
    assert [(s.lines, s.tags) for s in got] == [
        ((b"one", b"two"), (("msgid", "m1"),)),
        ((b"three",), (("msgid", "m2"), ("+k", "1"))),
        ((b"four",), (("msgid", "m3"), ("+k", "2"))),
        ((b"five",), (("msgid", "m4"),)),
    ]


def test_renderers_relay_tags_only_with_message_tags() -> None:
    renderers = Renderers("srv", {})
    said = Said("room", "alice", (b"hi",), Kind.SAY, (("msgid", "m1"), ("+r", "a;b c\\d")))
    tagged = renderers.for_caps({"message-tags", "server-time"}).render(said, WHEN)
    assert tagged == (
        b"@time=2027-01-15T08:00:00.000Z;msgid=m1;+r=a\\:b\\sc\\\\d :alice!alice@srv PRIVMSG #room hi\r\n"
    )
    assert (
        renderers.for_caps({"server-time"}).render(said, WHEN).startswith(b"@time=2027-01-15T08:00:00.000Z :")
    )
    assert renderers.for_caps(()).render(said, WHEN) == b":alice!alice@srv PRIVMSG #room hi\r\n"
    assert RENDERER.render(said, WHEN) == b"alice: hi\n"


def test_each_line_of_a_batch_gets_its_own_msgid() -> None:
    said = Said("room", "al", (b"a", b"b"), Kind.SAY, (("msgid", "m7"),))
    rows = Renderers("srv", {}).for_caps({"message-tags"}).render(said, WHEN).split(b"\r\n")[:-1]
    assert [tokenise(r.decode()).tags for r in rows] == [{"msgid": "m7-0"}, {"msgid": "m7-1"}]


def test_tagmsg_reaches_only_clients_with_message_tags() -> None:
    renderers = Renderers("srv", {})
    for event in (
        Said("room", "al", (), Kind.TAG, (("msgid", "m1"), ("+typing", "active"))),
        Private("al", "bo", "", Kind.TAG, (("msgid", "m1"), ("+typing", "active"))),
    ):
        msg = tokenise(renderers.for_caps({"message-tags"}).render(event, WHEN).decode())
        assert msg.command == "TAGMSG"
        assert msg.tags == {"msgid": "m1", "+typing": "active"}
        assert renderers.for_caps({"server-time"}).render(event, WHEN) == b""
        assert RENDERER.render(event, WHEN) == b""


def test_tagmsg_to_a_room_and_a_user_and_without_tags() -> None:
    registry: Registry[Any] = Registry()
    srv = server()
    alice = user(registry, srv, "alice", "message-tags echo-message")
    user(registry, srv, "bob")
    effects = alice.receive([b"@+typing=active TAGMSG #room", b"@+typing=done TAGMSG bob", b"TAGMSG #room"])
    room, private = events(effects)
    assert room == Said("room", "alice", (), Kind.TAG, (("msgid", "m1"), ("+typing", "active")))
    assert private == Private("alice", "bob", "", Kind.TAG, (("msgid", "m2"), ("+typing", "done")))
    echoes = [tokenise(r.decode()) for r in own_lines(effects)]
    assert [(m.command, m.params) for m in echoes] == [("TAGMSG", ["#room"]), ("TAGMSG", ["bob"])]
    assert alice.receive([b"@+x TAGMSG nobody"])[0].data.split()[1] == b"401"  # type: ignore[attr-defined]


def test_tags_over_4094_bytes_are_417_and_the_limit_itself_passes() -> None:
    registry: Registry[Any] = Registry()
    alice = user(registry, server(), "alice", "message-tags")
    head = "+k="
    fits = f"@{head}{'a' * (MAX_TAG_BYTES - len(head))} PRIVMSG #room :hi".encode()
    (said,) = events(alice.receive([fits]))
    assert said.tags[1] == ("+k", "a" * (MAX_TAG_BYTES - len(head)))
    over = f"@{head}{'a' * (MAX_TAG_BYTES - len(head) + 1)} PRIVMSG #room :hi".encode()
    (reply,) = alice.receive([over])
    assert reply.data.split()[1] == b"417"  # type: ignore[attr-defined]


def test_the_bus_does_not_carry_tags() -> None:
    said = Said("room", "al", (b"hi",), Kind.SAY, (("msgid", "m1"), ("+k", "v")))
    decoded, _ = codec.decode(codec.encode(said))
    assert decoded == Said("room", "al", (b"hi",), Kind.SAY)


_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).filter(
    lambda v: "\x00" not in v
)


@given(_VALUES)
def test_tag_values_survive_escaping_both_ways(value: str) -> None:
    registry: Registry[Any] = Registry()
    alice = user(registry, server(), "alice", "message-tags")
    escaped = value.translate(str.maketrans({"\\": "\\\\", ";": "\\:", " ": "\\s", "\r": "\\r", "\n": "\\n"}))
    (said,) = events(alice.receive([f"@+v={escaped} PRIVMSG #room :hi".encode()]))
    assert said.tags[1] == ("+v", value)
    rendered = Renderers("srv", {}).for_caps({"message-tags"}).render(said, WHEN)
    assert tokenise(rendered.decode()[:-2]).tags == {"msgid": "m1", "+v": value}
