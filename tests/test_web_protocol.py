"""The web port's pure layer: request heads, the Origin rule, WebSocket lines.

Plain calls only: a wsproto client connection plays the browser, in memory.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from gevent_chat.core import web
from gevent_chat.core.web import (
    CSP,
    SUBPROTOCOL,
    Asset,
    Received,
    Response,
    Site,
    Upgrade,
    WebGate,
    WebSocketLines,
)

HOST = "127.0.0.1:8080"
PAGE = Asset("text/html; charset=utf-8", b"<!doctype html><title>chat</title>")
SCRIPT = Asset("text/javascript; charset=utf-8", b"'use strict';")
SITE = Site({"/": PAGE, "/app.js": SCRIPT}, max_line_bytes=16)


def request(method: str = "GET", target: str = "/", headers: str = f"Host: {HOST}\r\n") -> bytes:
    return f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode()


def answer(data: bytes, site: Site = SITE, tls: bool = False) -> Response | Upgrade:
    result = WebGate(site, tls=tls).receive_data(data)
    assert result is not None
    return result


def head(response: Response | Upgrade) -> dict[str, str]:
    """Header name (lowercased) -> value."""
    lines = response.data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}


def status(response: Response | Upgrade) -> int:
    return int(response.data.split(b" ", 2)[1])


# -- HTTP ---------------------------------------------------------------------------


def test_page_is_served_with_strict_security_headers() -> None:
    response = answer(request())
    assert isinstance(response, Response)
    assert response.status == 200
    assert response.data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.data.endswith(b"\r\n\r\n" + PAGE.body)
    headers = head(response)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == str(len(PAGE.body))
    assert headers["content-security-policy"] == CSP
    assert "default-src 'none'" in CSP
    assert "script-src 'self'" in CSP
    assert "unsafe" not in CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"
    assert headers["connection"] == "close"


def test_assets_are_served_with_their_content_type() -> None:
    response = answer(request(target="/app.js"))
    assert head(response)["content-type"] == "text/javascript; charset=utf-8"
    assert response.data.endswith(SCRIPT.body)


def test_query_string_does_not_change_the_route() -> None:
    assert status(answer(request(target="/?nick=alice"))) == 200


def test_head_request_gets_headers_without_body() -> None:
    response = answer(request("HEAD"))
    assert response.data.endswith(b"\r\n\r\n")
    assert head(response)["content-length"] == str(len(PAGE.body))


@pytest.mark.parametrize("target", ["/index.html", "/metrics", "/../etc/passwd", "//", "/ws/"])
def test_other_paths_are_not_found(target: str) -> None:
    response = answer(request(target=target))
    assert isinstance(response, Response)
    assert response.status == 404
    headers = head(response)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["connection"] == "close"
    assert response.data.endswith(b"404 Not Found: not found\n")


@pytest.mark.parametrize(("method", "target", "allow"), [("POST", "/", "GET, HEAD"), ("PUT", "/ws", "GET")])
def test_other_methods_are_not_allowed(method: str, target: str, allow: str) -> None:
    response = answer(request(method, target))
    assert status(response) == 405
    assert head(response)["allow"] == allow


def test_head_arriving_byte_by_byte_gets_the_same_answer() -> None:
    data = request(target="/app.js")
    gate = WebGate(SITE)
    results = [gate.receive_data(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] == answer(data)


def test_overlong_head_is_refused_without_waiting_for_its_end() -> None:
    gate = WebGate(SITE)
    assert gate.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    response = gate.receive_data(b"X-Padding: " + b"a" * web.MAX_HEAD_BYTES)
    assert isinstance(response, Response)
    assert response.status == 431
    assert head(response)["connection"] == "close"


def test_head_limit_is_the_sites() -> None:
    small = Site(SITE.assets, max_head_bytes=64)
    assert status(answer(request(headers=f"Host: {HOST}\r\nX-A: {'a' * 64}\r\n"), small)) == 431


def test_garbage_gets_bad_request() -> None:
    assert status(answer(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")) == 400


def test_eof_before_a_whole_head_answers_nothing() -> None:
    gate = WebGate(SITE)
    assert gate.receive_data(b"GET / HT") is None
    assert gate.receive_data(b"") == Response(b"", 0)


def test_gate_answers_once() -> None:
    gate = WebGate(SITE)
    gate.receive_data(request())
    with pytest.raises(RuntimeError):
        gate.receive_data(request())


# -- the WebSocket handshake --------------------------------------------------------


def handshake(
    origin: str | None = f"http://{HOST}",
    host: str = HOST,
    subprotocols: tuple[str, ...] = (SUBPROTOCOL,),
    site: Site = SITE,
    tls: bool = False,
    extensions: tuple[str, ...] = (),
) -> tuple[WSConnection, Response | Upgrade]:
    client = WSConnection(ConnectionType.CLIENT)
    extra = [] if origin is None else [(b"Origin", origin.encode())]
    extra += [(b"Sec-WebSocket-Extensions", e.encode()) for e in extensions]
    data = client.send(Request(host=host, target="/ws", subprotocols=list(subprotocols), extra_headers=extra))
    return client, answer(data, site, tls)


def open_socket(limit: int = 16) -> tuple[WSConnection, WebSocketLines]:
    client, up = handshake(site=Site(SITE.assets, max_line_bytes=limit))
    assert isinstance(up, Upgrade), up
    client.receive_data(up.data)
    assert [type(e) for e in client.events()] == [AcceptConnection]
    return client, up.lines


def test_upgrade_accepts_and_picks_the_ircv3_subprotocol() -> None:
    client, up = handshake(subprotocols=("binary.ircv3.net", SUBPROTOCOL))
    assert isinstance(up, Upgrade)
    assert up.data.startswith(b"HTTP/1.1 101 ")
    assert up.subprotocol == SUBPROTOCOL
    assert up.received == Received()
    client.receive_data(up.data)
    (accepted,) = client.events()
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == SUBPROTOCOL
    assert up.lines.is_open


def test_upgrade_without_subprotocol_is_accepted_bare() -> None:
    _, up = handshake(subprotocols=())
    assert isinstance(up, Upgrade)
    assert up.subprotocol is None
    assert b"sec-websocket-protocol" not in up.data.lower()


def test_upgrade_negotiates_no_compression() -> None:
    _, up = handshake(extensions=("permessage-deflate; client_max_window_bits",))
    assert isinstance(up, Upgrade)
    assert b"sec-websocket-extensions" not in up.data.lower()


def test_bytes_after_the_head_are_not_lost() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    data = client.send(Request(host=HOST, target="/ws"))
    client.receive_data(answer(data).data)  # only to open the client's side
    list(client.events())
    up = answer(data + client.send(TextMessage(data="early")))
    assert isinstance(up, Upgrade)
    assert up.received.lines == [b"early"]


def test_plain_get_of_ws_is_a_4xx() -> None:
    response = answer(request(target="/ws"))
    assert isinstance(response, Response)
    assert 400 <= response.status < 500
    assert head(response)["connection"] == "close"


def test_wrong_websocket_version_is_426_with_the_version_we_speak() -> None:
    headers = (
        f"Host: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
    )
    response = answer(request(target="/ws", headers=headers))
    assert status(response) == 426
    assert head(response)["sec-websocket-version"] == "13"


def test_http_10_upgrade_is_refused() -> None:
    response = answer(b"GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert status(response) == 400


@pytest.mark.parametrize(
    ("origin", "host", "tls"),
    [
        (f"http://{HOST}", HOST, False),
        ("http://LOCALHOST:8080", "localhost:8080", False),
        ("http://chat.example", "chat.example:80", False),
        ("https://chat.example", "chat.example", True),
        ("https://chat.example:443", "chat.example", True),
        ("http://[::1]:8080", "[::1]:8080", False),
        (None, HOST, False),  # not a browser: it could use the TCP port anyway
    ],
)
def test_same_origin_may_open_the_socket(origin: str | None, host: str, tls: bool) -> None:
    _, up = handshake(origin=origin, host=host, tls=tls)
    assert isinstance(up, Upgrade), up


@pytest.mark.parametrize(
    ("origin", "host", "tls"),
    [
        ("http://evil.example", HOST, False),
        ("http://127.0.0.1:8081", HOST, False),
        (f"https://{HOST}", HOST, False),  # the scheme must match the port's
        (f"http://{HOST}", HOST, True),
        ("null", HOST, False),  # a sandboxed frame or a file: page
        ("http://evil.example", "evil.example/x", False),
        ("", HOST, False),
    ],
)
def test_other_origins_are_forbidden(origin: str, host: str, tls: bool) -> None:
    _, response = handshake(origin=origin, host=host, tls=tls)
    assert isinstance(response, Response)
    assert response.status == 403
    assert head(response)["connection"] == "close"


def test_allow_list_admits_another_origin() -> None:
    site = Site(SITE.assets, origins=frozenset({"https://Chat.Example/"}))
    _, up = handshake(origin="https://chat.example:443", site=site)
    assert isinstance(up, Upgrade)
    _, response = handshake(origin="https://other.example", site=site)
    assert isinstance(response, Response)
    assert response.status == 403


@pytest.mark.parametrize(
    "bad",
    ["chat.example", "ftp://chat.example", "https://chat.example/path", "https://u@chat.example", "https://"],
)
def test_normalise_origin_refuses_what_is_not_an_origin(bad: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        web.normalise_origin(bad)


def test_site_refuses_a_bad_allowed_origin() -> None:
    with pytest.raises(ValueError, match="origin"):
        Site(SITE.assets, origins=frozenset({"chat.example"}))


# -- lines over the WebSocket -------------------------------------------------------


def client_events(client: WSConnection, data: bytes) -> list[Event]:
    client.receive_data(data)
    return list(client.events())


def test_a_text_message_is_a_line() -> None:
    client, lines = open_socket()
    got = lines.receive_data(client.send(TextMessage(data="hello")))
    assert got == Received(lines=[b"hello"])


def test_a_trailing_line_ending_is_dropped_and_an_inner_one_splits() -> None:
    client, lines = open_socket()
    data = b"".join(client.send(TextMessage(data=t)) for t in ("a\r\n", "b\n", "c\nd", ""))
    assert lines.receive_data(data).lines == [b"a", b"b", b"c", b"d"]


def test_fragmented_message_is_one_line() -> None:
    client, lines = open_socket()
    first = client.send(TextMessage(data="hé", message_finished=False))
    assert lines.receive_data(first).lines == []
    assert lines.receive_data(client.send(TextMessage(data="llo"))).lines == ["héllo".encode()]


def test_overlong_message_is_refused_once_and_the_socket_stays() -> None:
    client, lines = open_socket(limit=16)
    got = lines.receive_data(client.send(TextMessage(data="x" * 17)))
    assert got.lines == [None]
    assert not got.closed
    assert lines.is_open
    assert lines.receive_data(client.send(TextMessage(data="y" * 16))).lines == [b"y" * 16]


def test_overlong_fragmented_message_is_refused_before_it_ends() -> None:
    client, lines = open_socket(limit=16)
    assert lines.receive_data(client.send(TextMessage(data="x" * 10, message_finished=False))).lines == []
    # The limit is passed in the second fragment: refused now, not at the end.
    assert lines.receive_data(client.send(TextMessage(data="x" * 10, message_finished=False))).lines == [None]
    more = client.send(TextMessage(data="x" * 1000, message_finished=False))
    for _ in range(100):  # the rest is skipped, never kept
        assert lines.receive_data(more).lines == []
    assert lines.receive_data(client.send(TextMessage(data="x"))).lines == []
    assert lines.receive_data(client.send(TextMessage(data="next"))).lines == [b"next"]


def test_limit_counts_bytes_not_characters() -> None:
    client, lines = open_socket(limit=16)
    assert lines.receive_data(client.send(TextMessage(data="é" * 8))).lines == [("é" * 8).encode()]
    assert lines.receive_data(client.send(TextMessage(data="é" * 9))).lines == [None]


def test_binary_message_gets_one_error_line_and_the_socket_stays() -> None:
    client, lines = open_socket()
    data = client.send(BytesMessage(data=b"\x00\x01", message_finished=False))
    data += client.send(BytesMessage(data=b"\x02"))
    got = lines.receive_data(data)
    assert got.lines == []
    assert got.replies == [web.BINARY_REFUSED]
    assert got.replies[0].startswith(b"*** error: ")
    assert not got.closed
    assert lines.receive_data(client.send(TextMessage(data="text"))).lines == [b"text"]


def test_ping_is_answered_with_a_pong_through_frames() -> None:
    client, lines = open_socket()
    assert lines.receive_data(client.send(Ping(payload=b"k1"))) == Received()
    assert lines.wants_write
    events = client_events(client, lines.frames())
    assert events == [Pong(payload=b"k1")]
    assert not lines.wants_write


def test_keepalive_ping_reports_the_pong() -> None:
    client, lines = open_socket()
    lines.ping(b"alive")
    (ping,) = client_events(client, lines.frames())
    assert isinstance(ping, Ping)
    assert lines.receive_data(client.send(ping.response())).pong


def test_each_line_is_one_text_frame_without_its_newline() -> None:
    client, lines = open_socket()
    payload = b"*** Welcome, alice! 1 user online\nbob: hi\n\nEnter your nickname: "
    events = client_events(client, lines.frames(payload))
    texts = [e.data for e in events if isinstance(e, TextMessage)]
    assert texts == ["*** Welcome, alice! 1 user online", "bob: hi", "", "Enter your nickname: "]
    assert all(isinstance(e, TextMessage) and e.message_finished for e in events)
    assert lines.frames(b"") == b""


def test_one_payload_to_many_sockets_reads_the_same_on_each() -> None:
    """A broadcast frames its payload once; every socket, one with a pong waiting
    too, still reads exactly its lines."""
    sockets = [open_socket(limit=64) for _ in range(3)]
    first_client, first = sockets[0]
    first.receive_data(first_client.send(Ping(payload=b"p")))
    payload = b"alice: hi\nalice: there\n"
    for number, (client, lines) in enumerate(sockets):
        events = client_events(client, lines.frames(payload))
        if number == 0:
            assert events.pop(0) == Pong(payload=b"p")
        assert [e.data for e in events if isinstance(e, TextMessage)] == ["alice: hi", "alice: there"]
    client, lines = sockets[1]
    events = client_events(client, lines.frames(b"bob: yo\n"))
    assert [e.data for e in events if isinstance(e, TextMessage)] == ["bob: yo"]


def test_pong_goes_out_before_lines() -> None:
    client, lines = open_socket()
    lines.receive_data(client.send(Ping(payload=b"p")))
    events = client_events(client, lines.frames(b"x\n"))
    assert events[0] == Pong(payload=b"p")
    assert isinstance(events[1], TextMessage)


def test_peer_close_is_echoed_and_later_lines_dropped() -> None:
    client, lines = open_socket()
    got = lines.receive_data(client.send(CloseConnection(code=1000, reason="bye")))
    assert got.closed
    assert lines.close_code == 1000
    assert lines.frames(b"too late\n") == b""
    (echo,) = client_events(client, lines.close(1001))
    assert isinstance(echo, CloseConnection)
    assert echo.code == 1000
    assert lines.is_closed


def test_lines_before_the_peers_close_are_kept() -> None:
    client, lines = open_socket()
    got = lines.receive_data(
        client.send(TextMessage(data="/quit lunch")) + client.send(CloseConnection(1000))
    )
    assert got.lines == [b"/quit lunch"]
    assert got.closed


def test_lines_after_our_close_are_dropped() -> None:
    client, lines = open_socket()
    lines.close(web.GOING_AWAY)
    got = lines.receive_data(client.send(TextMessage(data="late")))
    assert got.lines == []


def test_server_close_handshake_with_going_away() -> None:
    client, lines = open_socket()
    data = lines.frames(b"*** server shutting down\n") + lines.close(web.GOING_AWAY, "server shutting down")
    events = client_events(client, data)
    assert isinstance(events[0], TextMessage)
    assert events[0].data == "*** server shutting down"
    assert isinstance(events[1], CloseConnection)
    assert (events[1].code, events[1].reason) == (1001, "server shutting down")
    assert not lines.is_closed  # waiting for the answer
    assert lines.frames(b"late\n") == b""
    got = lines.receive_data(client.send(events[1].response()))
    assert got.closed
    assert lines.is_closed
    assert lines.close() == b""


def test_eof_closes_with_1006_and_nothing_to_send() -> None:
    _, lines = open_socket()
    got = lines.receive_data(b"")
    assert got.closed
    assert lines.close_code == 1006
    assert lines.close() == b""
    assert lines.receive_data(b"more") == Received(closed=True)


def test_unmasked_frame_fails_the_connection_with_1002() -> None:
    client, lines = open_socket()
    got = lines.receive_data(b"\x81\x02hi")  # a client must mask its frames
    assert got.closed
    assert got.lines == []
    assert lines.close_code == 1002
    (close,) = client_events(client, lines.close())
    assert isinstance(close, CloseConnection)
    assert close.code == 1002


def test_invalid_utf8_fails_the_connection_with_1007() -> None:
    client, lines = open_socket()
    frame = bytearray(client.send(TextMessage(data="ab")))
    mask = frame[2:6]
    frame[6:8] = bytes(b ^ mask[i] for i, b in enumerate(b"\xff\xfe"))
    got = lines.receive_data(bytes(frame))
    assert got.closed
    assert lines.close_code == 1007


messages = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=24), max_size=8)


@given(messages=messages, cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=40))
def test_any_split_of_the_bytes_gives_the_same_lines(messages: list[str], cuts: list[int]) -> None:
    """Lines do not depend on TCP segmentation, and obey the limit (an oracle in one line)."""
    client, lines = open_socket(limit=16)
    data = b"".join(client.send(TextMessage(data=m)) for m in messages)
    got: list[bytes | None] = []
    pos = 0
    for n in [*cuts, len(data)]:
        got += lines.receive_data(data[pos : pos + n]).lines if pos < len(data) else []
        pos += n
    expected = [m.encode() if len(m.encode()) <= 16 else None for m in messages if m]
    assert got == expected


@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=20)))
def test_frames_round_trip_lines(texts: list[str]) -> None:
    """What the server sends as lines, the browser receives as the same texts, one per frame."""
    client, lines = open_socket()
    payload = b"".join(t.encode() + b"\n" for t in texts)
    events = client_events(client, lines.frames(payload))
    assert [e.data for e in events if isinstance(e, TextMessage)] == texts
