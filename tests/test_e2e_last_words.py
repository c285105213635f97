"""End-to-end: lines queued just before a graceful close still reach the client.

gevent's ``Queue.shutdown()`` throws ``ShutDown`` into a ``get()`` already
waiting even when items were queued just before; the writer must still send them.
"""

from __future__ import annotations

from collections.abc import Callable

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient


def test_register_timeout_notice_arrives_before_close(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(register_timeout=0.2)
    client = ChatClient(server.address)
    try:
        client.expect_prompt()
        assert client.read_until_closed() == ["*** registration timed out, goodbye"]
    finally:
        client.close()


def test_shutdown_farewell_reaches_an_idle_reader(make_server: Callable[..., ChatServer]) -> None:
    server = make_server()
    client = ChatClient(server.address)
    try:
        client.register("alice")
        server.stop(timeout=1)
        assert client.read_until_closed() == ["*** server shutting down"]
    finally:
        client.close()
