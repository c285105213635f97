"""End-to-end: the Prometheus metrics endpoint, scraped over real sockets.

Every labelled series exists at zero from the start, the counters and
gauges move as clients connect, chat, are refused and are cut, and
``--metrics-port`` serves them from a child process (``spawn_server``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import gevent
import pytest
from gevent import socket

from gevent_chat.server import ChatServer
from gevent_chat.server.metrics import REFUSAL_REASONS, REJECTION_REASONS, TIMEOUT_KINDS
from tests.helpers import ChatClient, ServerProcess, free_port, read_all, scrape, wait_until

MakeServer = Callable[..., ChatServer]
SpawnServer = Callable[..., ServerProcess]
Dial = Callable[..., ChatClient]


def test_labelled_metric_series_exist_at_zero_from_the_start(make_server: Callable[..., ChatServer]) -> None:
    """A failure means ``rate()`` over a counter is empty until its first event."""
    server = make_server(metrics_port=0)
    assert server.metrics_address is not None
    m = scrape(server.metrics_address)
    expected = [
        *(f'gevent_chat_rejected_lines_total{{reason="{r}"}}' for r in REJECTION_REASONS),
        *(f'gevent_chat_refused_connections_total{{reason="{r}"}}' for r in REFUSAL_REASONS),
        *(f'gevent_chat_timeout_disconnects_total{{kind="{k}"}}' for k in TIMEOUT_KINDS),
    ]
    assert {name: m.get(name) for name in expected} == dict.fromkeys(expected, 0.0)
    assert len(REFUSAL_REASONS) == 7  # the README lists them all


# -- metrics ---------------------------------------------------------------------------


def test_metrics_move_as_clients_act(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(metrics_port=0, max_line_bytes=100, outbox_size=4)
    assert server.metrics_address is not None
    addr = server.metrics_address
    m = scrape(addr)
    assert m["gevent_chat_connected_clients"] == 0
    assert m["gevent_chat_registered_users"] == 0
    alice, bob = dial(server.address), dial(server.address)
    alice.register("alice")
    bob.register("bob")
    alice.expect("bob joined")
    m = scrape(addr)
    assert (m["gevent_chat_connected_clients"], m["gevent_chat_registered_users"]) == (2, 2)
    before = m
    alice.send_raw(b"one\ntwo\nthree\n" + b"x" * 200 + b"\n")
    for text in ("one", "two", "three"):
        bob.expect(f"^alice: {text}$")
    alice.expect("line too long")
    m = scrape(addr)
    assert m["gevent_chat_received_lines_total"] - before["gevent_chat_received_lines_total"] == 4
    assert m["gevent_chat_delivered_lines_total"] - before["gevent_chat_delivered_lines_total"] == 3
    assert m["gevent_chat_sent_bytes_total"] - before["gevent_chat_sent_bytes_total"] >= len(
        b"alice: one\nalice: two\nalice: three\n"
    )
    assert m['gevent_chat_rejected_lines_total{reason="too_long"}'] == 1
    http = dial(server.address)
    http.send("GET /metrics HTTP/1.1")
    read_all(http)
    assert scrape(addr)['gevent_chat_refused_connections_total{reason="http"}'] == 1
    # A reader that stops: once the socket buffers are full, its outbox
    # (4 lines) overflows and it is cut.
    filler = b"".join(b"%06d%s\n" % (i, b"z" * 90) for i in range(100_000))
    sender = gevent.spawn(alice.send_raw, filler)
    alice.expect(r"^\*\*\* bob left \(too slow\)$", timeout=8)
    sender.kill()
    m = scrape(addr)
    assert m["gevent_chat_slow_consumer_disconnects_total"] == 1
    wait_until(lambda: scrape(addr)["gevent_chat_connected_clients"] == 1, what="bob to be gone")
    for c in (alice, bob, http):
        c.close()


def test_metrics_port_flag_serves_prometheus_text(spawn_server: SpawnServer, dial: Dial) -> None:
    srv = spawn_server("--metrics-port", "0")
    addr = srv.wait_listening()
    pattern = r"metrics on http://127\.0\.0\.1:(\d+)/metrics"
    wait_until(lambda: re.search(pattern, srv.log_text()) is not None, what="the metrics line")
    match = re.search(pattern, srv.log_text())
    assert match is not None
    metrics_addr = ("127.0.0.1", int(match.group(1)))
    assert scrape(metrics_addr)["gevent_chat_registered_users"] == 0
    client = dial(addr)
    client.register("alice")
    wait_until(lambda: scrape(metrics_addr)["gevent_chat_registered_users"] == 1)


# -- the metrics port under attack -----------------------------------------------------


def test_scrape_gets_through_while_sixty_connections_hold_half_requests(make_server: MakeServer) -> None:
    """16 connections at once, each with 5 s to send its request: 50 that
    sent half a request kept every scrape waiting in the backlog."""
    server = make_server(metrics_port=0)
    assert server.metrics_address is not None
    holders = [socket.create_connection(server.metrics_address, timeout=5) for _ in range(60)]
    try:
        for sock in holders:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        start = time.monotonic()
        assert scrape(server.metrics_address)["gevent_chat_registered_users"] == 0
        assert time.monotonic() - start < 2.0  # far less than the holders' 5 s deadline
        for sock in holders:  # not let go to make room: still waiting for their requests
            sock.settimeout(0.0)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in holders:
            sock.close()


def test_a_trickling_metrics_request_is_cut_at_the_deadline(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline is for the whole request: a byte every 0.2 s does not renew it."""
    from gevent_chat.server import metrics

    monkeypatch.setattr(metrics, "SCRAPE_TIMEOUT", 1.0)
    server = make_server(metrics_port=0)
    assert server.metrics_address is not None
    trickler = socket.create_connection(server.metrics_address, timeout=5)
    start = time.monotonic()
    request = b"GET /metrics HTTP/1.1\r\n" + b"X-Slow: y\r\n" * 100
    try:
        assert _trickle_until_cut(trickler, request, pace=0.2, limit=3.0), "still open after 3 s"
        assert time.monotonic() - start < 2.5
    finally:
        trickler.close()


def _trickle_until_cut(sock: socket.socket, data: bytes, pace: float, limit: float) -> bool:
    """Send ``data`` a byte every ``pace`` seconds; True once the server closes, False after ``limit``."""
    deadline = time.monotonic() + limit
    for byte in data:
        if time.monotonic() > deadline:
            return False
        try:
            sock.sendall(bytes([byte]))
            sock.settimeout(pace)  # the attack's pace, and a look at whether it was cut
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset
            return True
    return False


#: Requests pywsgi cannot parse, each answered 400 or 414.
BAD_REQUESTS = {
    "5000 header lines": b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n",
    "a 70 KB request line": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    "a 70 KB header line": b"GET /metrics HTTP/1.1\r\nX-A: " + b"b" * 70_000 + b"\r\n\r\n",
    "binary junk": bytes(range(256)) * 4 + b"\r\n\r\n",
}


def _send_bad_requests(addr: tuple[str, int]) -> None:
    for what, request in BAD_REQUESTS.items():
        sock = socket.create_connection(addr, timeout=5)
        try:
            sock.sendall(request)
        except ConnectionResetError:
            pass  # answered and closed before it all went out
        answer = sock.recv(100)
        sock.close()
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 414")), (what, answer)


def _stopped(proc: ServerProcess) -> str:
    """Stop the server (SIGTERM) and return all it wrote to stderr."""
    proc.proc.terminate()
    assert proc.wait() == 0
    return proc.log_text()


def test_bad_metrics_requests_log_one_info_line_each(spawn_server: SpawnServer) -> None:
    """pywsgi printed a traceback to stderr for 5,000 header lines or a
    70 KB header line, whatever the log level."""
    srv = spawn_server("--metrics-port", "0")
    pattern = r"metrics on http://127\.0\.0\.1:(\d+)/metrics"
    wait_until(lambda: re.search(pattern, srv.log_text()) is not None, what="the metrics line")
    match = re.search(pattern, srv.log_text())
    assert match is not None
    _send_bad_requests(("127.0.0.1", int(match.group(1))))
    text = _stopped(srv)
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "metrics: bad request from 127.0.0.1: " in line]
    assert len(lines) == len(BAD_REQUESTS), text
    assert all(" INFO " in line and len(line) < 300 for line in lines), lines


def test_bad_metrics_requests_print_nothing_at_log_level_warning() -> None:
    port = free_port()
    srv = ServerProcess("--metrics-port", str(port), "--log-level", "warning")
    try:
        wait_until(lambda: _accepts(port), what="the metrics port to open")
        _send_bad_requests(("127.0.0.1", port))
        assert _stopped(srv) == ""
    finally:
        srv.kill()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return False
    return True
