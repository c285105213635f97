"""IRC end to end: its protections, and IRC over WebSocket, TLS and a bus between servers."""

from __future__ import annotations

import socket as stdsocket
from collections.abc import Callable

import pytest
from gevent import socket

from gevent_chat.core.config import Config
from gevent_chat.server import ChatServer
from gevent_chat.server.bus import LocalBroker
from tests.helpers import ChatClient, sample, wait_until
from tests.irc_client import IrcClient
from tests.test_e2e_irc import joined, sender

NAME = "irc.test"


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    return make_server(irc_port=0, server_name=NAME)


# -- protections -------------------------------------------------------------------------------


def test_quiet_client_is_pinged_then_dropped_with_error(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(irc_port=0, server_name=NAME, irc_ping_interval=0.2)
    bob = IrcClient(server.irc_addresses[0])
    try:
        bob.register("bob")
        ping = bob.expect("PING", timeout=2)
        bob.send(f"PONG :{ping.params[0]}")
        assert bob.expect("PING", timeout=2).command == "PING"
        error = bob.expect("ERROR", timeout=2)
        assert "Ping timeout" in error.params[0]
    finally:
        bob.close()


def test_irc_connections_are_counted_under_their_own_transport(
    server: ChatServer, irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    irc("bob")
    irc("carol")
    assert sample(server, "gevent_chat_transport_connected_clients", transport="irc") == 2
    assert sample(server, "gevent_chat_transport_connected_clients", transport="tcp") == 1


def test_http_request_on_the_irc_port_is_an_error(irc: Callable[..., IrcClient]) -> None:
    probe = irc()
    probe.send("GET / HTTP/1.1")
    assert probe.expect("ERROR").command == "ERROR"


def test_connections_over_the_address_limit_get_error(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(irc_port=0, server_name=NAME, max_per_ip=1)
    first = IrcClient(server.irc_addresses[0])
    second = IrcClient(server.irc_addresses[0])
    try:
        first.register("bob")
        assert second.expect("ERROR").params[0].startswith("Closing Link")
    finally:
        first.close()
        second.close()


def test_shutdown_tells_irc_users_with_error(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(irc_port=0, server_name=NAME)
    bob = IrcClient(server.irc_addresses[0])
    try:
        bob.register("bob")
        server.stop(timeout=1)
        assert "ERROR :server shutting down" in bob.eof()
    finally:
        bob.close()


def test_registration_window_closes_with_error(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(irc_port=0, server_name=NAME, register_timeout=0.2)
    bob = IrcClient(server.irc_addresses[0])
    try:
        bob.send("NICK bob")
        assert bob.expect("ERROR").params[0].startswith("registration timed out")
    finally:
        bob.close()


# -- other transports --------------------------------------------------------------------------


def test_irc_over_websocket_chats_with_line_users(
    make_server: Callable[..., ChatServer], connect: Callable[..., ChatClient]
) -> None:
    server = make_server(irc_port=0, web_port=0, server_name=NAME)
    alice = ChatClient(server.address)
    bob = IrcClient(server.web_address, ws=True)
    try:
        alice.register("alice")
        assert bob.ws is not None
        assert bob.ws.subprotocol == "text.ircv3.net"
        bob.register("bob")
        joined(bob)
        assert not any(line.endswith(("\r", "\n")) for line in bob.ws.lines)
        bob.send("PRIVMSG #lobby :from a browser")
        alice.expect("^bob: from a browser$")
        alice.send("back at you")
        assert bob.expect("PRIVMSG").params == ["#lobby", "back at you"]
    finally:
        alice.close()
        bob.close()


def test_irc_over_tls(make_server: Callable[..., ChatServer], cert: tuple[str, str]) -> None:
    certfile, keyfile = cert
    server = make_server(irc_tls_port=0, server_name=NAME, certfile=certfile, keyfile=keyfile)
    bob = IrcClient(server.irc_addresses[0], cafile=certfile)
    try:
        assert bob.register("bob")[0].command == "001"
    finally:
        bob.close()


def test_irc_and_line_users_chat_across_servers_of_one_bus() -> None:
    """Events cross the bus encoded; each server renders them for its own IRC and line users."""
    broker = LocalBroker()
    servers = [
        ChatServer(
            Config(host="127.0.0.1", port=0, rate_limit=0, irc_port=0, server_name=NAME), bus=broker.bus()
        )
        for _ in range(2)
    ]
    for one in servers:
        one.start()
    bob = IrcClient(servers[0].irc_addresses[0])
    alice = ChatClient(servers[1].address)
    try:
        alice.register("alice")
        bob.register("bob")
        joined(bob)
        alice.expect(r"^\*\*\* bob joined #lobby$")
        alice.send("from the other server")
        msg = bob.expect("PRIVMSG")
        assert (sender(msg), msg.params) == ("alice", ["#lobby", "from the other server"])
        bob.send("PRIVMSG #lobby :and back")
        alice.expect("^bob: and back$")
    finally:
        bob.close()
        alice.close()
        for one in servers:
            one.stop(timeout=1)


@pytest.mark.timeout(30)  # several MB must pass the kernel's buffers before the outbox fills
def test_an_irc_client_that_stops_reading_is_cut_and_the_room_goes_on(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(irc_port=0, server_name=NAME, outbox_size=50)
    sleeper = socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    sleeper.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    sleeper.connect(server.irc_addresses[0])
    sleeper.sendall(b"NICK zed\r\nUSER zed 0 * :Zed\r\nJOIN #lobby\r\n")
    alice = ChatClient(server.address)
    carol = ChatClient(server.address)
    try:
        alice.register("alice")
        carol.register("carol")
        wait_until(lambda: server.registry.is_in("zed", "lobby"), what="zed in #lobby")
        for i in range(2500):
            alice.send(f"line {i} " + "x" * 2500)
        carol.expect("^alice: line 2499 ", timeout=25)
        wait_until(lambda: sample(server, "gevent_chat_slow_consumer_disconnects_total") == 1, what="cut")
        wait_until(lambda: server.registry.get("zed") is None, what="zed gone")
    finally:
        sleeper.close()
        alice.close()
        carol.close()
