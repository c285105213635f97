"""IRCv3 message-tags end to end: real IRC clients and a line client on one server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gevent_chat.core.config import Config
from gevent_chat.server import ChatServer
from gevent_chat.server.bus import LocalBroker
from tests.helpers import ChatClient
from tests.irc_client import IrcClient, opening

NAME = "irc.test"


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    return make_server(irc_port=0, server_name=NAME)


@pytest.fixture
def irc(server: ChatServer) -> Iterator[Callable[..., IrcClient]]:
    """Open IRC clients registered as ``nick`` with ``caps``, in ``#lobby``."""
    with opening(server.irc_addresses[0]) as open_registered:

        def open_client(nick: str, caps: tuple[str, ...] = ()) -> IrcClient:
            client: IrcClient = open_registered(nick, caps)
            client.send("JOIN #lobby")
            client.collect(["366"])
            return client

        yield open_client


def test_client_tags_and_tagmsg_reach_only_clients_that_take_them(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    dave = connect("dave")
    alice = irc("alice", ("message-tags", "echo-message"))
    bob = irc("bob", ("message-tags",))
    carol = irc("carol")
    for client in (alice, bob):
        client.sync()
    alice.send(r"@+draft/react=a\sb\:c;+k;time=forged PRIVMSG #lobby :hi")
    echo, got = alice.expect("PRIVMSG"), bob.expect("PRIVMSG")
    assert got.params == ["#lobby", "hi"]
    assert got.tags == {"+draft/react": "a b;c", "+k": "", "msgid": echo.tags["msgid"]}  # type: ignore[index]
    assert echo.tags == got.tags
    assert carol.raw_line().startswith(":alice!")  # no tags at all
    dave.expect(r"^alice: hi$")

    alice.send("@+typing=active TAGMSG #lobby")
    alice.send("PRIVMSG #lobby :after")
    tagmsg = bob.read()
    assert (tagmsg.command, tagmsg.params) == ("TAGMSG", ["#lobby"])
    assert tagmsg.tags is not None
    assert tagmsg.tags["+typing"] == "active"
    assert bob.read().params == ["#lobby", "after"]
    nothing_before = carol.read()  # a client without message-tags never sees the TAGMSG
    assert (nothing_before.command, nothing_before.params) == ("PRIVMSG", ["#lobby", "after"])
    assert dave.read_line() == "alice: after"


def test_private_tags_and_a_burst_with_differing_tags(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice", ("message-tags",))
    bob = irc("bob", ("message-tags",))
    alice.sync()
    alice.send_raw(
        b"@+n=1 PRIVMSG #lobby :one\r\n@+n=2 PRIVMSG #lobby :two\r\n"
        b"PRIVMSG #lobby :three\r\n@+n=4 PRIVMSG bob :four\r\n@+n=5 TAGMSG bob\r\n"
    )
    got = [bob.read() for _ in range(5)]
    assert [(m.command, m.params[-1], (m.tags or {}).get("+n")) for m in got] == [
        ("PRIVMSG", "one", "1"),
        ("PRIVMSG", "two", "2"),
        ("PRIVMSG", "three", None),
        ("PRIVMSG", "four", "4"),
        ("TAGMSG", "bob", "5"),
    ]
    assert len({(m.tags or {})["msgid"] for m in got}) == 5


def test_tags_over_4094_bytes_are_417_and_the_limit_is_relayed(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice", ("message-tags",))
    bob = irc("bob", ("message-tags",))
    value = "v" * (4094 - len("+k="))
    alice.send(f"@+k={value}x PRIVMSG #lobby :too long")
    assert alice.expect("417").params[-1] == "Input line was too long"
    alice.send(f"@+k={value} PRIVMSG #lobby :" + "y" * 400)
    got = bob.expect("PRIVMSG")
    assert got.tags is not None
    assert got.tags["+k"] == value
    assert got.params[-1] == "y" * 400


def test_the_bus_carries_the_text_and_not_the_tags() -> None:
    broker = LocalBroker()
    config = Config(host="127.0.0.1", port=0, rate_limit=0, irc_port=0, server_name=NAME)
    a, b = (ChatServer(config, bus=broker.bus()) for _ in range(2))
    opened: list[IrcClient] = []
    for server in (a, b):
        server.start()
    try:
        alice, bob = IrcClient(a.irc_addresses[0]), IrcClient(b.irc_addresses[0])
        opened += [alice, bob]
        for client, nick in ((alice, "alice"), (bob, "bob")):
            client.register(nick, ("message-tags",))
            client.send("JOIN #lobby")
            client.collect(["366"])
        alice.send("@+typing=active TAGMSG #lobby")
        alice.send("@+draft/react=x PRIVMSG #lobby :across")
        got = bob.expect("PRIVMSG", "TAGMSG")
        assert (got.command, got.params) == ("PRIVMSG", ["#lobby", "across"])  # no TAGMSG first
        assert not got.tags
    finally:
        for client in opened:
            client.close()
        for server in (a, b):
            server.stop(timeout=1)
