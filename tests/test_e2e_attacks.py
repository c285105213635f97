"""End-to-end: the attacks a review found, each over real sockets.

Every test here failed before its fix: a TLS connection that got the
registration window twice, refused TLS connections that held descriptors
for seconds each, overlong lines that escaped the unregistered-line cap,
trickled bytes that defeated the idle timeout, and more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import pytest
from gevent import socket

from gevent_chat.client import tls as client_tls
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, wait_until

MakeServer = Callable[..., ChatServer]


def closed_within(sock: socket.socket, timeout: float) -> bytes:
    """Everything received until the server closes; AssertionError if it stays open."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    raise AssertionError(f"still open after {timeout} s; got {data!r}")


def tls_client(sock: socket.socket, cafile: str) -> ChatClient:
    client = ChatClient.__new__(ChatClient)
    client.timeout, client.buf, client.lines = 5.0, b"", []
    client.sock = client_tls.client_context(cafile=cafile).wrap_socket(sock, server_hostname="127.0.0.1")
    return client


def test_tls_handshake_and_registration_share_one_window(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    """A client that finishes its handshake late must not get a fresh window."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, register_timeout=1.5)
    raw = socket.create_connection(server.address, timeout=5)
    start = time.monotonic()
    gevent.sleep(1.0)  # the slowloris: a ClientHello sent late
    client = tls_client(raw, certfile)
    try:
        client.expect_prompt()
        assert b"registration timed out" in closed_within(client.sock, 3)
        elapsed = time.monotonic() - start
        assert elapsed < 2.0, f"closed {elapsed:.2f} s after accept, window 1.5 s"
    finally:
        client.close()


def test_refused_tls_connections_are_closed_at_once_past_a_few(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    """Over --max-per-ip, silent TLS connections used to hold a descriptor for
    a 5 s handshake each, with no bound; someone from another address then
    waited seconds for the prompt."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, max_per_ip=1)
    holder = tls_client(socket.create_connection(server.address, timeout=5), certfile)
    flood = []
    try:
        holder.expect_prompt()
        for _ in range(60):
            flood.append(socket.create_connection(server.address, timeout=5))
        closed = 0
        deadline = time.monotonic() + 1.0  # far less than a refusal's handshake window
        for sock in flood:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                pass
        assert closed >= 60 - 8 - 2, f"only {closed} of 60 refused connections were closed at once"
        start = time.monotonic()
        other = socket.create_connection(server.address, timeout=5, source_address=("127.0.0.2", 0))
        late = tls_client(other, certfile)
        late.expect_prompt(timeout=2)
        assert time.monotonic() - start < 1.0
        late.close()
    finally:
        holder.close()
        for sock in flood:
            sock.close()


def test_a_plaintext_client_on_a_tls_port_is_told_so(make_server: MakeServer, cert: tuple[str, str]) -> None:
    """Only a first byte that cannot open a TLS handshake is answered in
    plaintext; a client that waits for a prompt is closed at the end of the
    registration window, with nothing said (it may be a slow TLS client)."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, register_timeout=1.0)
    typer = socket.create_connection(server.address, timeout=5)  # nc, typing a nick at once
    waiter = socket.create_connection(server.address, timeout=5)  # a client waiting for the prompt
    try:
        typer.sendall(b"alice\n")
        assert closed_within(typer, 2) == b"*** this port requires TLS\n"
        assert closed_within(waiter, 4) == b""
    finally:
        typer.close()
        waiter.close()


def test_overlong_lines_count_against_the_unregistered_line_cap(make_server: MakeServer) -> None:
    server = make_server(max_unregistered_lines=5, max_line_bytes=100)
    client = ChatClient(server.address)
    try:
        client.send_raw(b"x" * 200 + b"\n")
        client.expect(r"line too long")
        client.send_raw((b"x" * 200 + b"\n") * 20)
        rest = client.read_until_closed(timeout=3)
        assert rest[-1].endswith("*** too many lines before registering, goodbye")
        assert sum("line too long" in line for line in rest) == 4
    finally:
        client.close()


def test_an_overlong_password_prompts_for_the_password_again(make_server: MakeServer) -> None:
    server = make_server(password="s3cret", max_line_bytes=100)
    client = ChatClient(server.address)
    try:
        client.sock.settimeout(5)
        assert client.sock.recv(100) == b"Password: "
        client.send_raw(b"x" * 200 + b"\n")
        client.expect(r"^\*\*\* error: line too long")
        deadline = time.monotonic() + 5
        while b"Password: " not in client.buf:
            assert client._fill(deadline)
        client.buf = b""
        client.send("s3cret")
        client.expect_prompt()
    finally:
        client.close()


@pytest.mark.timeout(15)
def test_trickling_bytes_of_an_unfinished_line_does_not_defeat_the_idle_timeout(
    make_server: MakeServer,
) -> None:
    server = make_server(idle_timeout=1.0)
    client = ChatClient(server.address)
    try:
        client.register("trickler")
        start = time.monotonic()
        client.sock.settimeout(0.25)
        got = b""
        while b"idle" not in got:
            assert time.monotonic() - start < 4, "still connected while trickling"
            try:
                client.sock.sendall(b"z")  # the attack: one byte of a line that never ends
                got += client.sock.recv(4096)
            except TimeoutError:
                pass
            except OSError:
                break  # cut: by the idle timeout, which the check below tells from an early drop
        assert 0.5 <= time.monotonic() - start < 3
    finally:
        client.close()


def test_parallel_wrong_passwords_exhaust_the_address_budget(make_server: MakeServer) -> None:
    """Each connection waited --password-delay, but parallel connections guessed
    without waiting; now an address with too many failures is refused at once."""
    server = make_server(password="s3cret", password_delay=0.2, max_password_failures=3)
    guessers = [ChatClient(server.address) for _ in range(3)]
    try:
        for guesser in guessers:
            guesser.sock.settimeout(5)
            assert guesser.sock.recv(100) == b"Password: "
        for i, guesser in enumerate(guessers):
            guesser.send(f"guess{i}")
        for guesser in guessers:
            assert guesser.read_until_closed(timeout=3)[-1] == "*** wrong password"
        late = ChatClient(server.address)
        assert closed_within(late.sock, 2) == b"*** too many wrong passwords from your address, try later\n"
        late.close()
        other = socket.create_connection(server.address, timeout=5, source_address=("127.0.0.2", 0))
        other.settimeout(5)
        assert other.recv(100) == b"Password: "  # another address keeps its own budget
        other.close()
    finally:
        for guesser in guessers:
            guesser.close()


def test_running_out_of_descriptors_is_one_warning_and_the_server_recovers(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    """Out of descriptors, gevent's accept loop printed a traceback several
    times a second, and --max-clients above the limit never said so."""
    proc = spawn_server(max_fds=64)
    addr = proc.wait_listening()
    assert "--max-clients 10000 is more than this process's 64 file descriptors" in proc.log_text()
    flood = []
    try:
        for _ in range(80):
            flood.append(socket.create_connection(addr, timeout=5))
        wait_until(lambda: "out of file descriptors" in proc.log_text(), what="the warning")
        for sock in flood:
            sock.close()
        flood.clear()
        client = ChatClient(addr)
        client.register("survivor")  # the backlog drains; the server still serves
        client.close()
        warnings = [line for line in proc.log if "out of file descriptors" in line]
        assert 1 <= len(warnings) <= 3, warnings
        assert "Traceback" not in proc.log_text()
    finally:
        for sock in flood:
            sock.close()


def test_metrics_port_survives_silent_connections_and_logs_bad_requests_in_one_line(
    make_server: MakeServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Silent connections to the metrics port were held forever, and malformed
    requests wrote full tracebacks to stderr whatever the log level."""
    from gevent_chat.server import metrics

    monkeypatch.setattr(metrics, "SCRAPE_TIMEOUT", 0.5)
    caplog.set_level(logging.INFO, logger="gevent_chat")
    server = make_server(metrics_port=0)
    assert server.metrics_address is not None
    silent = [socket.create_connection(server.metrics_address, timeout=5) for _ in range(40)]
    try:
        for i in range(20):
            bad = socket.create_connection(server.metrics_address, timeout=5)
            bad.sendall(b"\xff\xfe GARBAGE %d\r\n\r\n" % i)
            bad.settimeout(5)
            assert bad.recv(100).startswith(b"HTTP/1.1 400")
            bad.close()
        # Once the silent ones time out, a scrape is served again.
        scraper = socket.create_connection(server.metrics_address, timeout=5)
        scraper.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        scraper.settimeout(5)
        assert scraper.recv(100).startswith(b"HTTP/1.1 200")
        scraper.close()
        chat = ChatClient(server.address)
        chat.register("alice")
        chat.close()
        for sock in silent:  # each was let go after its deadline, not held for ever
            closed_within(sock, 3)
    finally:
        for sock in silent:
            sock.close()
    assert "Traceback" not in capfd.readouterr().err
    bad_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics:")]
    assert len(bad_lines) >= 20
    assert all("\n" not in line and len(line) < 260 for line in bad_lines)


def test_a_busy_metrics_port_is_named_in_the_error(spawn_server: Callable[..., ServerProcess]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        proc = ServerProcess("--rate-limit", "0", "--metrics-port", str(port))
        try:
            assert proc.wait() == 1
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in proc.log_text()
        finally:
            proc.kill()
    finally:
        taken.close()


def test_the_log_names_commands_but_never_what_users_say(spawn_server: Callable[..., ServerProcess]) -> None:
    proc = spawn_server("--log-level", "debug")
    addr = proc.wait_listening()
    alice, bob = ChatClient(addr), ChatClient(addr)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.send("a secret plan")
        bob.expect(r"^alice: a secret plan$")
        alice.send("/who")
        alice.expect(r"users in #lobby")
        alice.send("/quit off to the secret meeting")
        bob.expect(r"^\*\*\* alice left \(off to the secret meeting\)$")
        wait_until(lambda: "alice (" in proc.log_text() and "disconnected: quit" in proc.log_text())
        assert "ran /who" in proc.log_text()
        assert "secret" not in proc.log_text()
    finally:
        alice.close()
        bob.close()
