"""The web port over real sockets: a WebSocket user is a user like any other.

The browser is played by wsproto's client on a gevent socket (``ws_client``);
TCP users are the raw ``ChatClient``.  Both talk to one in-process server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent import socket
from wsproto.frame_protocol import CloseReason

from gevent_chat.client import tls as client_tls
from gevent_chat.core.config import parse_args
from gevent_chat.core.errors import ConfigError
from gevent_chat.core.web import CSP
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, wait_until
from tests.ws_client import HandshakeRefused, WsClient, http_request, upgrade_request

Make = Callable[..., ChatServer]


@pytest.fixture
def web(make_server: Make) -> Callable[..., ChatServer]:
    """A server with its web port on a free port."""

    def make(**overrides: Any) -> ChatServer:
        return make_server(web_port=0, **overrides)

    return make


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """Clients to close after the test."""
    opened: list[Any] = []
    yield opened
    for client in opened:
        client.close()


def ws(server: ChatServer, clients: list[Any], nick: str | None = None, **options: Any) -> WsClient:
    client = WsClient(server.web_address, **options)
    clients.append(client)
    if nick is not None:
        client.register(nick)
    return client


def tcp(server: ChatServer, clients: list[Any], nick: str | None = None) -> ChatClient:
    client = ChatClient(server.address)
    clients.append(client)
    if nick is not None:
        client.register(nick)
    return client


def host(server: ChatServer) -> str:
    return "{}:{}".format(*server.web_address)


# -- registration and chat ------------------------------------------------------------


def test_registration_over_websocket_is_the_tcp_one(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients)
    assert alice.subprotocol is None  # text.ircv3.net would make it IRC
    assert alice.read_line() == "Enter your nickname: "  # the prompt: one frame, no newline
    alice.send("bad nick!")
    assert alice.read_line().startswith("*** ")
    assert alice.read_line() == "Enter your nickname: "
    alice.send("alice")
    assert alice.read_line() == "*** Welcome, alice! 1 user online"
    bob = tcp(server, clients)
    bob.expect_prompt()
    bob.send("Alice")
    assert bob.read_line() == "*** nickname Alice is taken, choose another"


def test_websocket_and_tcp_users_chat_both_ways(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients, "alice")
    bob = tcp(server, clients, "bob")
    assert alice.read_line() == "*** bob joined #lobby"
    alice.send("hello bob")
    assert bob.read_line() == "alice: hello bob"
    bob.send("hi alice")
    assert alice.read_line() == "bob: hi alice"
    alice.send("/me waves")
    assert bob.read_line() == "* alice waves"
    bob.send("/msg alice psst")
    assert alice.read_line() == "*bob* psst"
    assert bob.read_line() == "-> *alice* psst"
    alice.send("/join dev")
    assert alice.read_line() == "*** you joined #dev"
    assert bob.read_line() == "*** alice left #lobby"
    bob.send("/join dev")
    bob.expect(r"^\*\*\* you joined #dev$")
    assert alice.read_line() == "*** bob joined #dev"
    bob.send("in dev now")
    assert alice.read_line() == "bob: in dev now"
    alice.send("/who")
    assert alice.read_line() == "*** 2 users in #dev: @alice, bob"
    # A newcomer on the web port gets the room's history with its timestamps.
    carol = ws(server, clients, "carol")
    carol.send("/join dev")
    carol.expect(r"^\*\*\* you joined #dev$")
    carol.expect(r"in dev now$")
    assert re.fullmatch(r"\[\d\d:\d\d\] bob: in dev now", carol.lines[-1])


def test_a_message_of_several_lines_is_several_lines(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients, "alice")
    bob = tcp(server, clients, "bob")
    alice.read_line()
    alice.send("one\ntwo\r\n")
    assert [bob.read_line(), bob.read_line()] == ["alice: one", "alice: two"]
    alice.send_fragments("thr", "ee")
    assert bob.read_line() == "alice: three"


def test_server_password_over_websocket(web: Make, clients: list[Any]) -> None:
    server = web(password="s3cret", password_delay=0)
    alice = ws(server, clients)
    assert alice.read_line() == "Password: "
    alice.send("s3cret")
    assert alice.register("alice").startswith("*** Welcome, alice!")
    mallory = ws(server, clients)
    assert mallory.read_line() == "Password: "
    mallory.send("guess")
    lines, code = mallory.read_until_close()
    assert lines == ["*** wrong password"]
    assert code == CloseReason.NORMAL_CLOSURE


# -- errors ---------------------------------------------------------------------------


def test_oversized_frame_gets_the_error_and_the_connection_stays(web: Make, clients: list[Any]) -> None:
    server = web(max_line_bytes=64)
    alice = ws(server, clients, "alice")
    bob = tcp(server, clients, "bob")
    alice.read_line()
    alice.send("x" * 65)
    assert alice.read_line() == "*** error: line too long (limit 64 bytes)"
    alice.send_fragments("y" * 40, "y" * 40)  # over the limit only in sum
    assert alice.read_line() == "*** error: line too long (limit 64 bytes)"
    alice.send("x" * 64)
    assert bob.read_line() == "alice: " + "x" * 64
    sample = server.metrics.registry.get_sample_value
    assert sample("gevent_chat_rejected_lines_total", {"reason": "too_long"}) == 2


def test_binary_frame_gets_an_error_line(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients, "alice")
    alice.send_binary(b"\x00\x01")
    assert alice.read_line() == "*** error: binary messages are not supported, send text"
    alice.send("/who")
    assert alice.read_line() == "*** 1 user in #lobby: alice"


def test_another_origin_gets_403_and_an_allowed_one_gets_in(web: Make, clients: list[Any]) -> None:
    server = web(web_origins=("https://chat.example",))
    with pytest.raises(HandshakeRefused) as refused:
        ws(server, clients, origin="http://evil.example")
    assert refused.value.status == 403
    assert b"origin" in refused.value.body
    with pytest.raises(HandshakeRefused):
        ws(server, clients, origin="null")  # a sandboxed page or a file: URL
    # Admitted and registered (a refused handshake raises HandshakeRefused):
    ws(server, clients, "alice", origin="https://chat.example:443")
    ws(server, clients, "bob", origin=None)  # not a browser: could use the TCP port anyway
    assert server.metrics.registry.get_sample_value("gevent_chat_web_responses_total", {"status": "403"}) == 2


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (upgrade_request("{host}").replace(b"Sec-WebSocket-Key", b"X-Key"), 400),
        (upgrade_request("{host}").replace(b"Version: 13", b"Version: 8"), 426),
        (upgrade_request("{host}").replace(b"Upgrade: websocket\r\n", b""), 400),
        (b"GET /ws HTTP/1.0\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /ws HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /nope HTTP/1.1\r\nHost: {host}\r\n\r\n", 404),
        (b"DELETE / HTTP/1.1\r\nHost: {host}\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\nHost: {host}\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
def test_bad_requests_get_4xx(web: Make, request_bytes: bytes, status: int) -> None:
    server = web()
    got, response = http_request(server.web_address, request_bytes.replace(b"{host}", host(server).encode()))
    assert got == status, response[:300]
    assert b"Connection: close" in response
    assert server.connections == set()


def test_page_and_assets_are_served_with_the_csp(web: Make) -> None:
    server = web()
    for path, kind in [("/", b"text/html"), ("/app.js", b"text/javascript"), ("/style.css", b"text/css")]:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        status, response = http_request(server.web_address, request)
        assert status == 200
        head, body = response.split(b"\r\n\r\n", 1)
        assert b"Content-Type: " + kind in head
        assert f"Content-Security-Policy: {CSP}".encode() in head
        assert body


def test_a_request_head_must_arrive_in_time(web: Make, clients: list[Any]) -> None:
    server = web(register_timeout=0.3)
    slow = ChatClient(server.web_address)
    clients.append(slow)
    slow.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    assert slow.read_line().startswith("HTTP/1.1 408 ")
    slow.read_until_closed()
    assert (
        server.metrics.registry.get_sample_value(
            "gevent_chat_timeout_disconnects_total", {"kind": "request_head"}
        )
        == 1
    )


def test_a_client_that_never_reads_is_cut_and_the_others_carry_on(web: Make, clients: list[Any]) -> None:
    server = web(outbox_size=50)
    ws(server, clients, "stuck", rcvbuf=4096)
    reader = ws(server, clients, "reader")
    alice = tcp(server, clients, "alice")
    line = "z" * 4000
    for i in range(5000):  # until the kernel buffers for stuck are full, then its outbox
        alice.send(f"{i} {line}")
        reader.expect(rf"^alice: {i} ")  # the reader misses nothing meanwhile
        if all(c.nick != "stuck" for c in server.connections):
            break
    alice.expect(r"^\*\*\* stuck left \(too slow\)$")
    wait_until(lambda: len(server.connections) == 2, what="the slow client to go")
    assert server.metrics.registry.get_sample_value("gevent_chat_slow_consumer_disconnects_total") == 1


# -- closing ----------------------------------------------------------------------------


def test_quit_says_bye_then_closes_with_1000(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients, "alice")
    alice.send("/quit lunch")
    lines, code = alice.read_until_close()
    assert lines == ["*** bye"]
    assert code == CloseReason.NORMAL_CLOSURE
    assert alice.eof()


def test_shutdown_says_so_then_closes_with_1001(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients, "alice")
    waiting = ws(server, clients)  # not registered yet
    bob = tcp(server, clients, "bob")
    alice.read_line()
    stopper = gevent.spawn(server.stop, 2)
    lines, code = alice.read_until_close()
    assert lines == ["*** server shutting down"]
    assert code == CloseReason.GOING_AWAY
    assert waiting.read_until_close() == (["Enter your nickname: ", "*** server shutting down"], 1001)
    assert bob.read_until_closed() == ["*** server shutting down"]
    stopper.get(timeout=5)
    with pytest.raises(ConnectionRefusedError):
        WsClient(server.web_address, timeout=1)  # the web listener is gone too


def test_peer_close_is_answered_and_the_room_told(web: Make, clients: list[Any]) -> None:
    server = web()
    alice = ws(server, clients, "alice")
    bob = tcp(server, clients, "bob")
    alice.read_line()
    alice.close(code=1000)
    assert bob.read_line() == "*** alice left"
    wait_until(lambda: len(server.connections) == 1, what="alice to go")


def test_registration_timeout_over_websocket(web: Make, clients: list[Any]) -> None:
    server = web(register_timeout=0.3)
    late = ws(server, clients)
    assert late.read_until_close() == (["Enter your nickname: ", "*** registration timed out, goodbye"], 1000)


def test_idle_timeout_over_websocket(web: Make, clients: list[Any]) -> None:
    server = web(idle_timeout=0.3, web_ping_interval=0.1)
    alice = ws(server, clients, "alice")  # answers pings: alive, but idle all the same
    lines, code = alice.read_until_close()
    assert lines == ["*** disconnected: idle for 0.3 seconds"]
    assert code == 1000
    assert alice.pings >= 1


def test_pings_keep_an_answering_peer_and_drop_a_silent_one(web: Make, clients: list[Any]) -> None:
    server = web(web_ping_interval=0.1)
    alice = ws(server, clients, "alice")
    ws(server, clients, "mute", auto_pong=False)
    alice.read_line()
    alice.expect(r"^\*\*\* mute left \(ping timeout\)$", timeout=3)  # raises if it never comes
    assert alice.pings >= 2  # answered, so alice stays
    alice.send("/who")
    assert alice.read_line() == "*** 1 user in #lobby: alice"
    sample = server.metrics.registry.get_sample_value
    assert sample("gevent_chat_timeout_disconnects_total", {"kind": "ping"}) == 1


# -- limits, TLS, metrics, the command line ----------------------------------------------


def test_connection_limits_are_shared_with_the_tcp_port(web: Make, clients: list[Any]) -> None:
    server = web(max_per_ip=1)
    tcp(server, clients, "bob")
    with pytest.raises(HandshakeRefused) as refused:
        ws(server, clients)
    assert refused.value.status == 429
    assert b"too many connections from your address" in refused.value.body


def test_a_full_server_answers_503(web: Make, clients: list[Any]) -> None:
    server = web(max_clients=1)
    ws(server, clients, "alice")
    with pytest.raises(HandshakeRefused) as refused:
        ws(server, clients)
    assert refused.value.status == 503
    assert b"server full" in refused.value.body
    assert (
        server.metrics.registry.get_sample_value(
            "gevent_chat_refused_connections_total", {"reason": "server_full"}
        )
        == 1
    )


def test_flood_control_paces_a_websocket_sender_and_loses_nothing(web: Make, clients: list[Any]) -> None:
    server = web(rate_limit=50, rate_burst=5)
    alice = ws(server, clients, "alice")
    bob = tcp(server, clients, "bob")
    alice.read_line()
    for i in range(30):
        alice.send(f"line {i}")
    assert [bob.read_line() for _ in range(30)] == [f"alice: line {i}" for i in range(30)]
    assert (server.metrics.registry.get_sample_value("gevent_chat_flood_throttles_total") or 0) >= 1


def test_wss_with_the_same_certificate(web: Make, clients: list[Any], cert: tuple[str, str]) -> None:
    certfile, keyfile = cert
    server = web(certfile=certfile, keyfile=keyfile)
    alice = ws(server, clients, "alice", cafile=certfile)  # Origin https://127.0.0.1:port
    alice.send("/who")
    assert alice.read_line() == "*** 1 user in #lobby: alice"
    with pytest.raises(HandshakeRefused) as refused:
        ws(server, clients, cafile=certfile, origin=f"http://{host(server)}")  # http is another origin
    assert refused.value.status == 403
    status, response = http_request(server.web_address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400
    assert b"requires TLS" in response


def test_connected_clients_are_counted_by_transport(web: Make, clients: list[Any]) -> None:
    server = web()
    ws(server, clients, "alice")
    ws(server, clients, "bob")
    tcp(server, clients, "carol")
    sample = server.metrics.registry.get_sample_value
    assert sample("gevent_chat_transport_connected_clients", {"transport": "web"}) == 2
    assert sample("gevent_chat_transport_connected_clients", {"transport": "tcp"}) == 1
    assert sample("gevent_chat_connected_clients") == 3
    assert sample("gevent_chat_web_responses_total", {"status": "101"}) == 2


def test_web_flags_are_validated() -> None:
    config = parse_args(
        ["--web-port", "8080", "--web-origin", "HTTPS://Chat.Example", "--web-origin", "http://a:81"]
    )
    assert config.web_port == 8080
    assert config.web_host is None
    assert config.web_origins == ("https://chat.example:443", "http://a:81")
    assert parse_args([]).web_port is None
    for bad in (["--web-origin", "chat.example"], ["--web-port", "70000"], ["--web-ping-interval", "0"]):
        with pytest.raises(ConfigError):
            parse_args(bad)


def test_command_line_serves_the_web_port(spawn_server: Callable[..., ServerProcess]) -> None:
    proc = spawn_server("--web-port", "0")
    wait_until(lambda: "browser client on" in proc.log_text(), what="the web port's log line")
    line = next(line for line in proc.log if "browser client on http://127.0.0.1:" in line)
    port = int(line.rsplit(":", 1)[1].rstrip("/"))
    client = WsClient(("127.0.0.1", port))
    try:
        assert client.register("alice").startswith("*** Welcome, alice!")
    finally:
        client.close()


def test_the_connect_log_line_names_the_transport(
    web: Make, clients: list[Any], cert: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """An operator reading ``connect from PEER over X`` knows how the user came in."""
    caplog.set_level("INFO", logger="gevent_chat")
    certfile, keyfile = cert
    seen: dict[str, str] = {}
    for server, secure in ((web(), False), (web(certfile=certfile, keyfile=keyfile), True)):
        if secure:
            raw = socket.create_connection(server.address, timeout=5)
            context = client_tls.client_context(cafile=certfile)
            line_client = context.wrap_socket(raw, server_hostname="127.0.0.1")
            clients.append(line_client)
            web_client = ws(server, clients, "alice", cafile=certfile)
        else:
            line_client = socket.create_connection(server.address, timeout=5)
            clients.append(line_client)
            web_client = ws(server, clients, "alice")
        assert line_client.recv(100).startswith(b"Enter your nickname")  # past the connect line
        web_client.send("/who")
        assert web_client.read_line().startswith("*** ")
        for name, sock in (("line", line_client), ("web", web_client.sock)):
            host, port = sock.getsockname()[:2]
            match = re.search(rf"connect from {re.escape(host)}:{port} over (\w+)", caplog.text)
            assert match, caplog.text
            seen[f"{name}{'-tls' if secure else ''}"] = match.group(1)
    assert seen == {"line": "tcp", "web": "ws", "line-tls": "tls", "web-tls": "wss"}
