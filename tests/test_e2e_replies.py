"""End-to-end: a client that reads everything is never cut for its own replies.

Replies to a user's commands (help text, ``/who``, history replay) go
through the hub's accounting and drain turns like any broadcast, so a
burst of commands is paced by the sender's own writer, not refused.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient


def read_until_pong(client: ChatClient, token: str, timeout: float = 8.0) -> list[str]:
    """Every line up to ``*** pong TOKEN``; fails if the server cut the client first."""
    start = len(client.lines)
    client.expect(rf"^\*\*\* pong {token}$", timeout=timeout)
    lines = client.lines[start:]
    assert not any(line.startswith("*** disconnected") for line in lines), lines[-3:]
    return lines


def test_pasted_help_commands_are_all_answered(make_server: Callable[..., ChatServer]) -> None:
    """150 ``/help`` lines in one write want 1,500 reply lines, more than the
    outbox holds: the sender used to be cut without one reply."""
    server = make_server(rate_limit=0)
    alice = ChatClient(server.address)
    try:
        alice.register("alice")
        alice.send_raw(b"/help\n" * 150 + b"/ping done\n")
        lines = read_until_pong(alice, "done")
        assert sum(line.startswith("*** /help:") for line in lines) == 150
    finally:
        alice.close()


@pytest.mark.timeout(20)  # filling two rooms' history takes a few seconds of flood control
def test_quick_joins_with_long_history_do_not_cut_the_joiner(make_server: Callable[..., ChatServer]) -> None:
    """With flood control on and ``--history 100``, a dozen ``/join``s in one
    write replay 1,200 history lines: the joiner used to be cut (outbox full)."""
    server = make_server(rate_limit=10, rate_burst=20, history=100)
    talkers = [ChatClient(server.address) for _ in range(10)]
    alice = ChatClient(server.address)
    try:
        for i, talker in enumerate(talkers):
            talker.register(f"t{i}")
        for talker in talkers[5:]:
            talker.send("/join dev")
            talker.expect(r"^\*\*\* you joined #dev$")
        # Each talker's burst of 20 fits its own bucket: 100 lines a room at once.
        for i, talker in enumerate(talkers):
            talker.send_raw(b"".join(f"{i} {n}\n".encode() for n in range(20)))
        for talker in talkers:
            talker.send("/ping filled")
            talker.expect(r"^\*\*\* pong filled$")
        alice.register("alice")
        alice.send_raw(b"/join dev\n/join lobby\n" * 6 + b"/ping done\n")
        lines = read_until_pong(alice, "done", timeout=15)
        assert sum(line.startswith("*** you joined") for line in lines) == 12
        replayed = [line for line in lines if line.startswith("[") and " t" in line]
        assert len(replayed) >= 12 * 100  # (and the welcome's replay of #lobby)
    finally:
        for client in (*talkers, alice):
            client.close()
