"""Fixtures: a real server on an ephemeral port, clients, greenlet error capture."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gevent
import pytest
from gevent import socket

from gevent_chat.core.config import Config
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, SourcedChatClient, TLSChatClient, self_signed_cert
from tests.irc_client import IrcClient, opening


@pytest.fixture(autouse=True)
def fail_on_greenlet_errors() -> Iterator[None]:
    """An exception that escapes any greenlet fails the test, as in gevent's own suite."""
    hub = gevent.get_hub()
    errors: list[Any] = []
    original = hub.handle_error

    def record(context: Any, type_: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, (SystemExit, gevent.GreenletExit, KeyboardInterrupt)):
            errors.append((context, value))
        original(context, type_, value, tb)

    hub.handle_error = record
    try:
        yield
    finally:
        hub.handle_error = original
    assert not errors, f"greenlet errors: {errors!r}"


@pytest.fixture
def make_server() -> Iterator[Callable[..., ChatServer]]:
    """Start ``ChatServer(Config(host='127.0.0.1', port=0, rate_limit=0, **overrides))``; stopped after."""
    servers: list[ChatServer] = []

    def make(**overrides: Any) -> ChatServer:
        # Most tests measure delivery, not pacing: flood control (on by default,
        # 10 lines/s) would turn their bursts into minutes.  Tests of flood
        # control pass ``rate_limit`` themselves.
        overrides.setdefault("rate_limit", 0)
        server = ChatServer(Config(host="127.0.0.1", port=0, **overrides))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(timeout=1)


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    return make_server()


@pytest.fixture
def connect(server: ChatServer) -> Iterator[Callable[..., ChatClient]]:
    """Open raw clients to ``server``; all closed after the test."""
    clients: list[ChatClient] = []

    def open_client(nick: str | None = None) -> ChatClient:
        client = ChatClient(server.address)
        clients.append(client)
        if nick is not None:
            client.register(nick)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def irc(server: ChatServer) -> Iterator[Callable[..., IrcClient]]:
    """Open IRC clients to ``server``'s IRC port (registered as ``nick`` with ``caps`` if given);
    a module whose ``server`` fixture starts one with ``irc_port`` gets them."""
    with opening(server.irc_addresses[0]) as open_client:
        yield open_client


@pytest.fixture
def dial() -> Iterator[Callable[..., ChatClient]]:
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


@pytest.fixture
def spawn_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start ``python -m gevent_chat.server --port 0 ARGS...``; killed after the test.

    Returns a ``ServerProcess`` whose ``wait_listening()`` gives the address
    read from its ``listening on HOST:PORT`` log line.  ``env`` adds to the
    child's environment.  Flood control is off unless ``--rate-limit`` is given.
    """
    procs: list[ServerProcess] = []

    def spawn(
        *args: str, host: str = "127.0.0.1", env: Mapping[str, str] | None = None, max_fds: int | None = None
    ) -> ServerProcess:
        # As in ``make_server``: flood control off unless the test sets it.
        if not any(a.startswith("--rate-limit") for a in args):
            args = ("--rate-limit", "0", *args)
        proc = ServerProcess(*args, host=host, env=env, max_fds=max_fds)
        procs.append(proc)
        proc.wait_listening()
        return proc

    try:
        yield spawn
    finally:
        for proc in procs:
            proc.kill()


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, made with the openssl binary."""
    return self_signed_cert(tmp_path_factory.mktemp("cert"), "127.0.0.1", "IP:127.0.0.1")
