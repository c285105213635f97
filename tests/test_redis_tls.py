"""Servers sharing a Redis over TLS: ``--redis-url rediss://...``, on ``gevent.ssl``.

The servers run in this process next to the test, on one unpatched hub, and
share a real ``redis-server`` that speaks TLS only (``tests/redis_server.py``,
with the session's self-signed certificate for 127.0.0.1; skipped without the
binary unless ``GEVENT_CHAT_REQUIRE_ALL=1``).  A stdlib SSL socket anywhere on
the way to Redis would block that hub: the servers would stop answering while
a subscriber waits for Redis, which is what these tests would see first.
Every process started here is killed by PID.
"""

from __future__ import annotations

import gc
import re
import ssl as stdssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import gevent
import pytest
from gevent import ssl as gssl
from gevent.event import Event

from gevent_chat.core.config import Config
from gevent_chat.server import ChatServer
from gevent_chat.server.redis import RedisUnavailable
from gevent_chat.server.redis.link import GeventSSLConnection, connect, redact
from tests.helpers import ChatClient, ServerProcess, self_signed_cert, wait_until
from tests.redis_server import RedisServer, running_redis

Cert = tuple[str, str]
Nodes = Callable[..., list[ChatServer]]
Clients = Callable[..., ChatClient]

#: A hub blocked in a stdlib SSL read never runs pytest-timeout's signal handler
#: where it would end the test (the exception lands in whichever greenlet is
#: running): the thread method reports it, with the stack of the blocked read.
pytestmark = pytest.mark.timeout(10, method="thread")

#: How long a /who may take, here where nothing should ever wait long.
PROMPT = 1.0
#: The longest the hub may go without running a ready greenlet.
MAX_STALL = 0.5


@pytest.fixture
def tls_redis(tmp_path: Path, cert: Cert) -> Iterator[RedisServer]:
    with running_redis(tmp_path, tls=cert) as srv:
        yield srv


@pytest.fixture
def nodes(tls_redis: RedisServer, make_server: Callable[..., ChatServer]) -> Nodes:
    """``n`` in-process servers on ``url`` (by default the TLS Redis, CA given); stopped after."""

    def start(n: int, url: str | None = None) -> list[ChatServer]:
        return [make_server(redis_url=url or tls_redis.url, cluster="t") for _ in range(n)]

    return start


@pytest.fixture
def clients(dial: Callable[..., ChatClient]) -> Clients:
    """A client to ``server``, registered as ``nick`` if given; ``dial`` closes it after the test."""

    def open_client(server: ChatServer, nick: str | None = None) -> ChatClient:
        client = dial(server.address)
        if nick is not None:
            client.register(nick)
        return client

    return open_client


def _ssl_connections(redis: RedisServer) -> list[GeventSSLConnection]:
    """Every live redis-py connection of this process to ``redis``."""
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, GeventSSLConnection) and obj.port == redis.port and obj._sock is not None
    ]


def _who(client: ChatClient) -> tuple[str, float]:
    """/who's answer and how long it took."""
    started = time.monotonic()
    client.send("/who")
    line = client.expect(r"^\*\*\* \d+ users? in #").string
    return line, time.monotonic() - started


def _stalls() -> tuple[gevent.Greenlet[[], None], list[float]]:
    """A greenlet waking every 10 ms; ``gaps[0]`` is the longest it overslept (hub blocked)."""
    gaps = [0.0]

    def tick() -> None:
        while True:
            before = time.monotonic()
            gevent.sleep(0.01)
            gaps[0] = max(gaps[0], time.monotonic() - before - 0.01)

    return gevent.spawn(tick), gaps


# -- one chat over a TLS Redis -------------------------------------------------------


@pytest.mark.timeout(20, method="thread")  # two servers, a TLS redis-server, 400 lines
def test_users_on_two_servers_chat_both_ways_in_order_over_tls_redis(nodes: Nodes, clients: Clients) -> None:
    """A failure means the rediss:// link lost, reordered or did not carry lines."""
    a, b = nodes(2)
    alice = clients(a, "alice")
    bob = clients(b)
    assert bob.register("bob") == "*** Welcome, bob! 2 users online"
    alice.expect(r"^\*\*\* bob joined #lobby$")
    alice.send_raw(b"".join(f"a{i}\n".encode() for i in range(200)))
    bob.send_raw(b"".join(f"b{i}\n".encode() for i in range(200)))
    assert [bob.expect(r"^alice: a(\d+)$").group(1) for _ in range(200)] == [str(i) for i in range(200)]
    assert [alice.expect(r"^bob: b(\d+)$").group(1) for _ in range(200)] == [str(i) for i in range(200)]
    alice.send("/msg bob psst")
    assert bob.expect(r"^\*alice\*").string == "*alice* psst"
    assert _who(bob)[0] == "*** 2 users in #lobby: alice, bob"


@pytest.mark.timeout(20, method="thread")  # two servers, five /who while two users talk
def test_hub_stays_responsive_while_users_talk_and_redis_sockets_are_geventssl(
    nodes: Nodes, clients: Clients, tls_redis: RedisServer
) -> None:
    """redis-py's own SSLConnection would use stdlib SSL sockets: their reads block
    the process, so a server waiting for Redis would answer nobody."""
    a, b = nodes(2)
    alice, carol = clients(a, "alice"), clients(a, "carol")
    bob = clients(b, "bob")
    carol.send("/join side")  # not flooded by alice: only /who answers to read
    carol.expect(r"^\*\*\* you joined #side")
    ticker, gaps = _stalls()
    got: list[str] = []
    arrived, done = Event(), Event()

    def read() -> None:
        while True:
            got.append(bob.expect(r"^alice: (line \d+)$").group(1))
            arrived.set()

    def talk() -> None:
        """One line at a time, each only once bob has the last: a talk always under way."""
        while not done.is_set():
            arrived.clear()
            alice.send(f"line {len(got)}")
            assert arrived.wait(5), f"line {len(got)} did not reach bob"

    reader = talker = None
    try:
        # Idle: each server's subscriber is waiting on its TLS socket for Redis.
        line, took = _who(carol)
        assert line == "*** 1 user in #side: @carol"
        assert took < PROMPT
        reader = gevent.spawn(read)
        talker = gevent.spawn(talk)
        wait_until(lambda: len(got) >= 3, what="alice and bob talking")
        before = len(got)
        for _ in range(5):
            line, took = _who(carol)
            assert line == "*** 1 user in #side: @carol"
            assert took < PROMPT, f"/who took {took:.2f} s while alice talked"
        assert len(got) > before, "no line went round while carol asked"
        done.set()
        talker.get(timeout=5)
        assert got == [f"line {i}" for i in range(len(got))]
        assert gaps[0] < MAX_STALL, f"the hub was blocked for {gaps[0]:.2f} s"
    finally:
        gevent.killall([g for g in (ticker, reader, talker) if g is not None])
    connections = _ssl_connections(tls_redis)
    assert len(connections) >= 4, connections  # per server: commands and its subscription
    for conn in connections:
        assert type(conn._sock) is gssl.SSLSocket
        assert not isinstance(conn._sock, stdssl.SSLSocket)
        assert isinstance(conn.context, gssl.SSLContext)
        assert conn.context.sslsocket_class is gssl.SSLSocket
        assert conn.context.verify_mode == gssl.CERT_REQUIRED
        assert conn.context.check_hostname


# -- verification ----------------------------------------------------------------------


def test_a_certificate_no_ca_vouches_for_is_one_clear_error(tls_redis: RedisServer) -> None:
    """Without ssl_ca_certs only the system's CAs are trusted; they never signed this one."""
    server = ChatServer(Config(host="127.0.0.1", port=0, redis_url=f"rediss://127.0.0.1:{tls_redis.port}/0"))
    with pytest.raises(RedisUnavailable) as raised:
        server.start()
    message = str(raised.value)
    assert "TLS certificate of 127.0.0.1:" in message
    assert "self-signed certificate" in message
    assert "ssl_ca_certs" in message
    assert "\n" not in message


def test_the_command_line_says_so_in_one_line_and_exits_1(tls_redis: RedisServer) -> None:
    proc = ServerProcess("--redis-url", f"rediss://127.0.0.1:{tls_redis.port}/0")
    try:
        assert proc.wait(8) == 1, proc.log
    finally:
        proc.kill()
    assert len(proc.log) == 1, proc.log
    assert re.search(r"cannot reach Redis at rediss://.*not accepted: self-signed certificate", proc.log[0])


@pytest.fixture(scope="module")
def named_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for the name redis.test only, not for 127.0.0.1."""
    return self_signed_cert(tmp_path_factory.mktemp("named-cert"), "redis.test", "DNS:redis.test")


def test_a_certificate_for_another_name_is_refused_unless_hostname_checks_are_off(
    tmp_path: Path, named_cert: Cert, make_server: Callable[..., ChatServer], clients: Clients
) -> None:
    """Its CA is trusted, but it names redis.test, not the 127.0.0.1 connected to."""
    with running_redis(tmp_path, tls=named_cert) as srv:
        with pytest.raises(RedisUnavailable, match=r"IP address mismatch.*ssl_check_hostname=false"):
            ChatServer(Config(host="127.0.0.1", port=0, redis_url=srv.url)).start()
        server = make_server(redis_url=srv.url + "&ssl_check_hostname=false")
        assert _who(clients(server, "alice"))[0] == "*** 1 user in #lobby: alice"
        connections = _ssl_connections(srv)
        assert connections
        for conn in connections:
            assert conn.context.verify_mode == gssl.CERT_REQUIRED  # the chain is still checked
            assert not conn.context.check_hostname


def test_ssl_cert_reqs_none_connects_to_a_self_signed_server(
    nodes: Nodes, clients: Clients, tls_redis: RedisServer
) -> None:
    a, b = nodes(2, f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=none")
    alice, bob = clients(a, "alice"), clients(b, "bob")
    alice.send("unverified, still encrypted")
    bob.expect(r"^alice: unverified, still encrypted$")
    connections = _ssl_connections(tls_redis)
    assert connections
    for conn in connections:
        assert type(conn._sock) is gssl.SSLSocket
        assert conn.context.verify_mode == gssl.CERT_NONE


def test_a_client_certificate_from_the_url_is_presented(
    tmp_path: Path, cert: Cert, make_server: Callable[..., ChatServer], clients: Clients
) -> None:
    """With tls-auth-clients yes, Redis hangs up on a client without a certificate."""
    with running_redis(tmp_path, tls=cert, tls_auth_clients=True) as srv:
        with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
            ChatServer(Config(host="127.0.0.1", port=0, redis_url=srv.url)).start()
        certfile, keyfile = (quote(path) for path in cert)
        server = make_server(redis_url=f"{srv.url}&ssl_certfile={certfile}&ssl_keyfile={keyfile}")
        assert _who(clients(server, "alice"))[0] == "*** 1 user in #lobby: alice"


# -- URLs refused before anything is sent ----------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ssl_cert_reqs=sometimes", "Invalid SSL Certificate Requirements Flag: sometimes"),
        ("ssl_ca_certs=/nonexistent/ca.pem", "unusable TLS settings"),
        ("ssl_ca_cert=ca.pem", "unexpected keyword argument 'ssl_ca_cert'"),
        ("ssl_validate_ocsp_stapled=true", "OCSP validation is not supported"),
        ("ssl_validate_ocsp=true", "OCSP validation is not supported"),
    ],
)
def test_a_bad_tls_option_is_an_invalid_url_at_once(query: str, message: str) -> None:
    with pytest.raises(RedisUnavailable, match="invalid Redis URL") as raised:
        connect(f"rediss://127.0.0.1:1/0?{query}", timeout=1.0)
    assert message in str(raised.value)


def test_ocsp_switched_off_in_the_url_is_no_error() -> None:
    connect("rediss://127.0.0.1:1/0?ssl_validate_ocsp=false&ssl_validate_ocsp_stapled=false", timeout=1.0)


def test_passwords_in_a_url_are_hidden_wherever_they_go() -> None:
    url = "rediss://chat:pw1@h:6380/0?ssl_keyfile=k.pem&ssl_password=pw2&password=pw3"
    shown = redact(url)
    assert shown == "rediss://chat:***@h:6380/0?ssl_keyfile=k.pem&ssl_password=***&password=***"
    with pytest.raises(RedisUnavailable) as raised:
        connect(url + "&ssl_ca_cert=typo", timeout=1.0)
    assert not {"pw1", "pw2", "pw3"} & set(re.findall(r"pw\d", str(raised.value)))


def test_unsupported_scheme_lists_rediss() -> None:
    with pytest.raises(RedisUnavailable, match=r"use redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix"):
        connect("http://127.0.0.1/", timeout=1.0)
