"""End-to-end: each protection attacked over real sockets.

Flood control, connection limits, the registration gate, timeouts, TLS, the
server password and the metrics endpoint, against an in-process server (and a
subprocess for the command-line flags).
"""

from __future__ import annotations

import logging
import re
import socket as stdsocket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest
from gevent import socket
from gevent import ssl as gssl

from gevent_chat.client import tls as client_tls
from gevent_chat.server import ChatServer, tls
from gevent_chat.server.metrics import REFUSAL_REASONS, REJECTION_REASONS, TIMEOUT_KINDS
from tests.helpers import ChatClient, ServerProcess, send_burst_read_paced, wait_until

MakeServer = Callable[..., ChatServer]
SpawnServer = Callable[..., ServerProcess]


# -- helpers ---------------------------------------------------------------------------


Dial = Callable[..., ChatClient]


class TLSChatClient(ChatClient):
    """A ``ChatClient`` over TLS, verifying the server against ``cafile``."""

    def __init__(self, sock: socket.socket, cafile: str, host: str) -> None:
        self.timeout = 5.0
        self.buf = b""
        self.lines: list[str] = []
        self.sock = client_tls.client_context(cafile=cafile).wrap_socket(sock, server_hostname=host)


class SourcedChatClient(ChatClient):
    """A plain ``ChatClient`` on an already connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.timeout = 5.0
        self.buf = b""
        self.lines: list[str] = []
        self.sock = sock


@pytest.fixture
def dial() -> Iterator[Dial]:
    """Open clients (plain, TLS with ``cafile=``, or from ``source=`` address); closed after."""
    opened: list[ChatClient] = []

    def open_client(
        addr: tuple[str, int], cafile: str | None = None, source: str | None = None
    ) -> ChatClient:
        sock = socket.create_connection(addr, timeout=5, source_address=(source or "127.0.0.1", 0))
        if cafile is None:
            client: ChatClient = SourcedChatClient(sock)
        else:
            try:
                client = TLSChatClient(sock, cafile, addr[0])
            except BaseException:
                sock.close()
                raise
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def read_all(client: ChatClient, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    data = client.buf
    client.sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = client.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    raise AssertionError(f"still open after {timeout} s; got {data!r}")


def expect_bytes(client: ChatClient, marker: bytes, timeout: float = 5.0) -> None:
    """Read until ``marker`` (a newline-less prompt) has arrived; consume through it."""
    deadline = time.monotonic() + timeout
    while marker not in client.buf:
        if not client._fill(deadline):
            raise AssertionError(f"closed before {marker!r}: {client.buf!r}")
    client.buf = client.buf.split(marker, 1)[1]


def scrape(addr: tuple[str, int]) -> dict[str, float]:
    """GET /metrics over a gevent socket; returns ``{'name{labels}': value}``."""
    sock = socket.create_connection(addr, timeout=5)
    try:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


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


def sample(server: ChatServer, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- flood control ---------------------------------------------------------------------


@pytest.mark.timeout(20)  # the flood itself is paced to take about 2 s
def test_flooder_is_slowed_while_others_flow_and_loses_nothing(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(rate_limit=40, rate_burst=10)
    flooder, listener, talker = (dial(server.address) for _ in range(3))
    for client, nick in ((flooder, "flooder"), (listener, "listener"), (talker, "talker")):
        client.register(nick)
    listener.expect("talker joined")
    lines = 90  # 10 at once, then 80 at 40/s: at least 2 s
    start = time.monotonic()
    flooder.send_raw(b"".join(b"flood %d\n" % i for i in range(lines)))
    listener.expect(r"^flooder: flood 0$")
    talker.send("still here")
    got = ["flooder: flood 0"]
    talker_at = None
    while len(got) < lines:
        line = listener.read_line()
        if line == "talker: still here":
            talker_at = time.monotonic() - start
        else:
            got.append(line)
    done_at = time.monotonic() - start
    assert got == [f"flooder: flood {i}" for i in range(lines)]  # none lost, in order
    assert done_at >= 1.5, f"the flood was not paced: done in {done_at:.2f} s"
    assert talker_at is not None, "the talker's line never arrived"
    assert talker_at < 1.0, f"the talker's line waited {talker_at:.2f} s behind the flood"
    assert sample(server, "gevent_chat_flood_throttles_total") > 0
    for client in (flooder, listener, talker):
        client.close()


def test_zero_rate_limit_turns_pacing_off(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(rate_limit=0)
    a, b = dial(server.address), dial(server.address)
    a.register("a")
    b.register("b")
    a.expect("b joined")
    b.send_raw(b"".join(b"x%d\n" % i for i in range(500)))
    for i in range(500):
        assert a.read_line(timeout=2) == f"b: x{i}"
    assert sample(server, "gevent_chat_flood_throttles_total") == 0


# -- connection limits -----------------------------------------------------------------


def test_connection_beyond_max_clients_is_told_server_full(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_clients=2)
    first, second = dial(server.address), dial(server.address)
    first.register("first")
    second.expect_prompt()  # connected, not registered: still counts
    third = dial(server.address)
    assert read_all(third) == b"*** server full\n"
    first.close()
    wait_until(lambda: server.limits.total == 1, what="the slot to be freed")
    fourth = dial(server.address)
    fourth.register("fourth")
    assert sample(server, "gevent_chat_refused_connections_total", reason="server_full") == 1
    for c in (second, third, fourth):
        c.close()


def test_connections_beyond_max_per_ip_are_refused_per_address(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_per_ip=2)
    ones = [dial(server.address) for _ in range(2)]
    for c in ones:
        c.expect_prompt()
    refused = dial(server.address)
    assert read_all(refused) == b"*** too many connections from your address\n"
    other = dial(server.address, source="127.0.0.2")  # another address: its own count
    other.register("elsewhere")
    assert sample(server, "gevent_chat_refused_connections_total", reason="per_ip") == 1
    for c in (*ones, refused, other):
        c.close()


def test_accepted_sockets_have_tcp_keepalive(server: ChatServer, dial: Dial) -> None:
    client = dial(server.address)
    client.expect_prompt()
    (conn,) = server.connections
    assert conn.sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE) == 1
    if hasattr(stdsocket, "TCP_KEEPIDLE"):
        assert conn.sock.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_KEEPIDLE) == 120
    client.close()


# -- registration abuse ----------------------------------------------------------------


def test_http_request_is_told_this_is_a_chat_server(server: ChatServer, dial: Dial) -> None:
    client = dial(server.address)
    client.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n")
    data = read_all(client)
    assert data.endswith(b"*** this is a chat server, not an HTTP server\n")
    assert sample(server, "gevent_chat_refused_connections_total", reason="http") == 1


def test_too_many_lines_before_registering_is_cut(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_unregistered_lines=5)
    client = dial(server.address)
    client.send_raw(b"bad nick!\n" * 5)
    for _ in range(5):
        client.expect("invalid")
    client.send_raw(b"still bad!\n")
    assert b"*** too many lines before registering, goodbye\n" in read_all(client)
    wait_until(lambda: not server.connections, what="the connection to be gone")
    assert sample(server, "gevent_chat_refused_connections_total", reason="unregistered_lines") == 1


def test_registration_lines_within_the_cap_still_register(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(max_unregistered_lines=5)
    client = dial(server.address)
    client.send_raw(b"bad!\n" * 4)
    client.send("alice")
    client.expect(r"\*\*\* Welcome, alice!")
    client.close()


# -- timeouts --------------------------------------------------------------------------


def test_silent_unregistered_client_is_cut_at_register_timeout(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(register_timeout=0.3)
    client = dial(server.address)
    start = time.monotonic()
    assert read_all(client).endswith(b"*** registration timed out, goodbye\n")
    assert time.monotonic() - start < 2.0
    assert sample(server, "gevent_chat_timeout_disconnects_total", kind="register") == 1


def test_idle_user_is_disconnected_while_a_talker_stays(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(idle_timeout=0.4)
    idle, talker = dial(server.address), dial(server.address)
    idle.register("idle")
    talker.register("talker")
    start = time.monotonic()

    def keep_talking() -> None:
        while True:
            talker.send("tick")
            gevent.sleep(0.1)

    chatter = gevent.spawn(keep_talking)
    try:
        data = read_all(idle, timeout=4)
        assert b"*** disconnected: idle for 0.4 seconds\n" in data
        assert time.monotonic() - start >= 0.3
        talker.expect(r"^\*\*\* idle left \(idle\)$")
        assert [c.nick for c in server.connections] == ["talker"]
    finally:
        chatter.kill()
    assert sample(server, "gevent_chat_timeout_disconnects_total", kind="idle") == 1
    talker.close()


# -- TLS -------------------------------------------------------------------------------


def test_tls_clients_chat_while_another_never_handshakes(
    make_server: MakeServer, cert: tuple[str, str], dial: Dial
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    silent = dial(server.address)  # TCP connected, never says a TLS word
    alice = dial(server.address, cafile=certfile)
    bob = dial(server.address, cafile=certfile)
    alice.register("alice")
    bob.register("bob")
    alice.expect("bob joined")
    alice.send("over TLS")
    bob.expect(r"^alice: over TLS$")
    bob.send("héllo ✓")
    alice.expect(r"^bob: héllo ✓$")
    assert isinstance(alice.sock, gssl.SSLSocket)
    for c in (silent, alice, bob):
        c.close()


def test_plaintext_client_on_tls_port_does_not_disturb_others(
    make_server: MakeServer, cert: tuple[str, str], dial: Dial
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    alice = dial(server.address, cafile=certfile)
    bob = dial(server.address, cafile=certfile)
    alice.register("alice")
    bob.register("bob")
    plain = dial(server.address)
    plain.send("mallory")
    read_all(plain)  # the server hangs up on it; what it sent back is TLS noise
    wait_until(lambda: sample(server, "gevent_chat_refused_connections_total", reason="tls_handshake") == 1)
    alice.send("unbothered")
    bob.expect(r"^alice: unbothered$")
    assert len(server.registry) == 2
    for c in (plain, alice, bob):
        c.close()


def test_tls_recipient_that_reads_steadily_is_not_cut(
    make_server: MakeServer, cert: tuple[str, str], dial: Dial
) -> None:
    """A TLS send never returns part of its data: it waits inside until all
    of it is out, so a writer serving a steady TLS reader left no partial
    send to judge a stall by, and its first look at the kernel's queue was
    compared, a few ms later, with the next: too little had drained in
    between, and a client reading at about 4 MB/s was cut as too slow."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    alice = dial(server.address, cafile=certfile)
    bob = dial(server.address, cafile=certfile)
    alice.register("alice")
    bob.register("bob")
    alice.expect(r"^\*\*\* bob joined$")
    assert send_burst_read_paced(alice, bob, 3000) == list(range(3000))


def test_tls_handshake_has_the_register_deadline(
    make_server: MakeServer, cert: tuple[str, str], dial: Dial
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, register_timeout=0.3)
    silent = dial(server.address)
    start = time.monotonic()
    # Silence on a TLS port is a plaintext client waiting for a prompt.
    assert read_all(silent, timeout=3) == b"*** this port requires TLS\n"
    assert time.monotonic() - start < 2.0
    wait_until(lambda: server.limits.total == 0, what="the slot to be freed")


def test_tls_refusal_is_sent_over_tls(make_server: MakeServer, cert: tuple[str, str], dial: Dial) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, max_clients=1)
    first = dial(server.address, cafile=certfile)
    first.register("first")
    second = dial(server.address, cafile=certfile)
    assert second.read_line() == "*** server full"
    for c in (first, second):
        c.close()


# -- server password -------------------------------------------------------------------


def test_wrong_password_is_refused_after_a_delay(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture, dial: Dial
) -> None:
    caplog.set_level(logging.DEBUG, logger="gevent_chat")
    server = make_server(password="s3cret", password_delay=0.3)
    client = dial(server.address)
    expect_bytes(client, b"Password: ")
    start = time.monotonic()
    client.send("guess")
    assert read_all(client) == b"*** wrong password\n"
    assert time.monotonic() - start >= 0.25
    assert sample(server, "gevent_chat_refused_connections_total", reason="wrong_password") == 1
    assert "s3cret" not in caplog.text
    assert "guess" not in caplog.text


def test_right_password_leads_to_the_nickname_prompt(make_server: MakeServer, dial: Dial) -> None:
    server = make_server(password="s3cret", password_delay=5)
    alice, bob = dial(server.address), dial(server.address)
    for client, nick in ((alice, "alice"), (bob, "bob")):
        expect_bytes(client, b"Password: ")
        client.send("s3cret", end=b"\r\n")
        client.register(nick)
    alice.send("in")
    bob.expect("^alice: in$")
    for c in (alice, bob):
        c.close()


def test_password_from_file_and_environment_on_the_command_line(
    tmp_path: Path, spawn_server: SpawnServer, dial: Dial
) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("from-file\n")
    for args, good, bad in (
        (("--password-file", str(pwfile)), "from-file", "from-env"),  # the file wins
        ((), "from-env", "from-file"),
    ):
        srv = spawn_server("--password-delay", "0", *args, env={"GEVENT_CHAT_PASSWORD": "from-env"})
        addr = srv.wait_listening()
        wrong = dial(addr)
        expect_bytes(wrong, b"Password: ")
        wrong.send(bad)
        assert read_all(wrong) == b"*** wrong password\n"
        right = dial(addr)
        expect_bytes(right, b"Password: ")
        right.send(good)
        right.register("alice")
        right.close()
        assert good not in srv.log_text()


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


def test_tls_contexts_are_gevents_not_the_blocking_stdlib_ones(cert: tuple[str, str]) -> None:
    """gevent.ssl.create_default_context() returns the stdlib's, whose sockets block the hub."""
    import ssl as stdssl

    certfile, keyfile = cert
    for ctx in (tls.server_context(certfile, keyfile), client_tls.client_context(cafile=certfile)):
        assert isinstance(ctx, gssl.SSLContext)
        assert ctx.sslsocket_class is gssl.SSLSocket
        assert ctx.sslsocket_class is not stdssl.SSLSocket


def test_tls_handshake_finished_after_stop_gets_no_session(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    """The handler checked ``stopping`` only before the TLS handshake: a
    client that finished its handshake after stop() got a prompt and a live
    session on a stopped server, which nothing would ever close."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    raw = socket.create_connection(server.address, timeout=5)
    wait_until(lambda: server.limits.total == 1, what="the handler to wait for the handshake")
    server.stop(timeout=0.1)
    late = TLSChatClient(raw, certfile, "127.0.0.1")  # the handshake completes now
    try:
        data = b""
        with gevent.Timeout(3):
            while chunk := late.sock.recv(4096):
                data += chunk
        assert b"nickname" not in data
        assert not server.connections
    finally:
        late.close()
