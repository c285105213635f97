"""End-to-end: the server's TLS port, attacked over real sockets.

TLS clients chat while another never handshakes or speaks plaintext, a
steady TLS reader is not cut as slow, the handshake has the registration
deadline, refusals go out over TLS, the contexts are gevent's, and a
handshake that finishes after stop() gets no session.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import pytest
from gevent import socket
from gevent import ssl as gssl

from gevent_chat.client import tls as client_tls
from gevent_chat.server import ChatServer, tls
from tests.helpers import ChatClient, TLSChatClient, read_all, sample, send_burst_read_paced, wait_until

MakeServer = Callable[..., ChatServer]
Dial = Callable[..., ChatClient]


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
    alice.expect(r"^\*\*\* bob joined #lobby$")
    assert send_burst_read_paced(alice, bob, 3000) == list(range(3000))


def test_silent_client_on_tls_port_is_closed_at_the_register_deadline_unanswered(
    make_server: MakeServer, cert: tuple[str, str], dial: Dial
) -> None:
    """Silence is not plaintext: a TLS client speaks first, but its
    ClientHello may be late, so a silent one gets no plaintext line, only
    the close at the end of the registration window."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, register_timeout=0.3)
    silent = dial(server.address)
    start = time.monotonic()
    assert read_all(silent, timeout=3) == b""
    assert time.monotonic() - start < 2.0
    wait_until(lambda: server.limits.total == 0, what="the slot to be freed")


@pytest.mark.timeout(15)  # a handshake 2.2 s late, then the 3 s registration window runs out
def test_late_client_hello_handshakes_and_is_closed_at_the_register_deadline(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    """A ClientHello 2.2 s after connecting, within ``register_timeout=3``:
    the handshake succeeds (it was answered with a plaintext line after 2 s
    of silence), and the window opened at accept still closes it at 3 s."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, register_timeout=3.0)
    raw = socket.create_connection(server.address, timeout=5)
    start = time.monotonic()
    gevent.sleep(2.2)  # the attack itself: a client slow to send its ClientHello
    late = TLSChatClient(raw, certfile, "127.0.0.1")
    try:
        late.expect_prompt()
        lines = late.read_until_closed(timeout=3)
        elapsed = time.monotonic() - start
        assert lines == ["*** registration timed out, goodbye"]
        assert 2.9 <= elapsed < 4.0, elapsed
    finally:
        late.close()


def test_stalled_tls_handshake_is_closed_without_plaintext(
    make_server: MakeServer, cert: tuple[str, str], dial: Dial
) -> None:
    """Half a ClientHello, then nothing: closed when the window ends, with
    at most a TLS alert, never a plaintext line."""
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, register_timeout=0.5)
    staller = dial(server.address)
    start = time.monotonic()
    staller.send_raw(b"\x16\x03\x01\x02\x00\x01\x00")  # a handshake record header, 2 of 512 bytes
    data = read_all(staller, timeout=3)
    assert time.monotonic() - start < 2.0
    assert data == b"" or data[:1] == b"\x15", data  # nothing, or an alert record
    assert b"***" not in data
    wait_until(lambda: sample(server, "gevent_chat_refused_connections_total", reason="tls_handshake") == 1)


def test_tls_refusal_is_sent_over_tls(make_server: MakeServer, cert: tuple[str, str], dial: Dial) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, max_clients=1)
    first = dial(server.address, cafile=certfile)
    first.register("first")
    second = dial(server.address, cafile=certfile)
    assert second.read_line() == "*** server full"
    for c in (first, second):
        c.close()


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
