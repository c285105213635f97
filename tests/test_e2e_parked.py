"""An idle plain-TCP reader parks on its read watcher, with no greenlet (see ``tcp.LineReader``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from gevent_chat.server import ChatServer
from gevent_chat.server.member import Member
from tests.helpers import ChatClient, wait_until


def _member(server: ChatServer, nick: str) -> Member:
    (member,) = [m for m in server.connections if m.nick == nick]
    return member


def _parked(member: Member) -> bool:
    return member.sock._read_event.callback is not None  # type: ignore[attr-defined]


def test_a_partial_line_outlives_a_park(server: ChatServer, connect: Callable[..., ChatClient]) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    bob.send_raw(b"hel")
    wait_until(lambda: _parked(_member(server, "bob")), what="bob's reader to park")
    bob.send("lo there")
    alice.expect(r"^bob: hello there$")
    assert len(server.connections) == 2


def test_an_error_in_a_resumed_read_loop_closes_only_that_connection(
    server: ChatServer,
    connect: Callable[..., ChatClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect(r"^\*\*\* bob joined #lobby$")
    wait_until(lambda: _parked(_member(server, "bob")), what="bob's reader to park")
    receive = Member.receive

    def failing(self: Member, lines: list[bytes | None]) -> None:
        if b"boom" in lines:
            raise RuntimeError("boom")
        receive(self, lines)

    monkeypatch.setattr(Member, "receive", failing)
    with caplog.at_level(logging.ERROR, logger="gevent_chat"):
        bob.send("boom")
        bob.read_until_closed()
    assert "error on connection" in caplog.text
    alice.expect(r"^\*\*\* bob left")
    wait_until(lambda: server.limits.total == 1, what="bob's slot to be freed")
    carol = connect("carol")
    carol.send("still here")
    alice.expect(r"^carol: still here$")


def test_a_parked_unregistered_connection_times_out(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(register_timeout=0.3)
    client = ChatClient(server.address)
    try:
        client.expect_prompt()
        client.send_raw(b"half a ni")  # parked with a partial line, no greenlet to raise into
        assert client.read_until_closed() == ["*** registration timed out, goodbye"]
        wait_until(lambda: not server.connections and server.limits.total == 0, what="the teardown")
    finally:
        client.close()
