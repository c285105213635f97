"""Events through the hub: several rooms per user, one render per kind of recipient.

A line user is in one room, but the registry lets a user be in several (an
IRC client's JOINs); these tests put line users in a second room through
the registry, as the IRC transport will, and read what arrives on the sockets.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gevent_chat.core import codec
from gevent_chat.core.events import Event, Said
from gevent_chat.server import ChatServer
from tests import test_hub_bus
from tests.helpers import ChatClient, sample


class Shouting:
    """A renderer of another kind: chat in capitals, tagged; counts its renders."""

    def __init__(self) -> None:
        self.renders = 0

    def render(self, event: Event, when: float) -> bytes:
        self.renders += 1
        assert when > 0
        if isinstance(event, Said):
            return b"".join(
                b"<%s> %s\n" % (event.nick.upper().encode(), line.upper()) for line in event.lines
            )
        return b"<event>\n"


# The fixture of test_hub_bus: two servers joined by one LocalBroker.
pair = test_hub_bus.pair


def test_each_kind_of_recipient_gets_its_own_bytes_rendered_once(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    alice, bob, carol, dave = connect("alice"), connect("bob"), connect("carol"), connect("dave")
    alice.expect(r"^\*\*\* dave joined #lobby$")
    alice.send("first")  # the room's members are grouped by renderer now
    for client in (bob, carol, dave):
        client.expect(r"^alice: first$")
    shouting = Shouting()  # a renderer changed later (IRC caps) must regroup them
    for nick in ("carol", "dave"):
        member = server.registry.get(nick)
        assert member is not None
        member.renderer = shouting
    alice.send_raw(b"hi\nthere\n")
    bob.expect(r"^alice: hi$")
    bob.expect(r"^alice: there$")
    for client in (carol, dave):
        client.expect(r"^<ALICE> HI$")
        client.expect(r"^<ALICE> THERE$")
    assert shouting.renders == 1  # one batch, one render for both its recipients


def test_a_quit_and_a_rename_reach_a_user_sharing_two_rooms_once(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.expect(r"^\*\*\* carol joined #lobby$")
    for nick in ("alice", "bob"):
        server.registry.join(nick, "dev")
    alice.send("/nick al")
    alice.send("/quit lunch")
    bob.expect(r"^\*\*\* alice is now known as al$")
    bob.expect(r"^\*\*\* al left \(lunch\)$")
    bob.send("/ping done")
    bob.expect(r"^\*\*\* pong done$")
    carol.expect(r"^\*\*\* al left \(lunch\)$")
    assert bob.lines.count("*** alice is now known as al") == 1
    assert bob.lines.count("*** al left (lunch)") == 1


def test_a_quit_from_another_server_reaches_a_user_sharing_two_rooms_once(
    pair: tuple[ChatServer, ChatServer],
) -> None:
    a, b = pair
    alice, bob, carol = ChatClient(a.address), ChatClient(b.address), ChatClient(b.address)
    try:
        alice.register("alice")
        bob.register("bob")
        carol.register("carol")
        alice.expect(r"^\*\*\* carol joined #lobby$")
        a.registry.join("alice", "dev")
        b.registry.join("bob", "dev")
        alice.send("/quit")
        bob.expect(r"^\*\*\* alice left$")
        carol.expect(r"^\*\*\* alice left$")
        bob.send("/ping done")
        bob.expect(r"^\*\*\* pong done$")
        assert bob.lines.count("*** alice left") == 1
    finally:
        for client in (alice, bob, carol):
            client.close()


def test_an_invalid_event_from_the_bus_is_dropped_and_logged_and_nothing_else_is_lost(
    pair: tuple[ChatServer, ChatServer], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    alice, bob = ChatClient(a.address), ChatClient(b.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect(r"^\*\*\* bob joined #lobby$")
        b.hub.receive("lobby", b"ev1 said say lobby mallory\nhi \x1b[2J\n", 2, True)
        b.hub.receive("lobby", codec.encode(Said("dev", "mallory", (b"wrong room",))), 2, True)
        assert sample(b, "gevent_chat_bus_rejected_events_total") == 2
        assert "dropped an event for #lobby from another server" in caplog.text
        alice.send("still here")
        bob.expect(r"^alice: still here$")
        assert not [line for line in bob.lines if "mallory" in line]
        assert [said.lines for _, said in b.registry.room_of("bob").history] == [(b"still here",)]
    finally:
        for client in (alice, bob):
            client.close()
