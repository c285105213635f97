"""End-to-end: the Prometheus metrics endpoint, scraped over real sockets.

Every labelled series exists at zero from the start, the counters and
gauges move as clients connect, chat, are refused and are cut, and
``--metrics-port`` serves them from a child process (``spawn_server``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import gevent

from gevent_chat.server import ChatServer
from gevent_chat.server.metrics import REFUSAL_REASONS, REJECTION_REASONS, TIMEOUT_KINDS
from tests.helpers import ChatClient, ServerProcess, read_all, scrape, wait_until

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
