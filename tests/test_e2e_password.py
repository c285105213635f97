"""End-to-end: the server password, attacked over real sockets.

A wrong password is refused after a delay and never logged, the right one
leads to the nickname prompt, and ``--password-file`` wins over
``GEVENT_CHAT_PASSWORD`` on the command line (a child process,
``spawn_server``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, read_all, sample

MakeServer = Callable[..., ChatServer]
SpawnServer = Callable[..., ServerProcess]
Dial = Callable[..., ChatClient]


def expect_bytes(client: ChatClient, marker: bytes, timeout: float = 5.0) -> None:
    """Read until ``marker`` (a newline-less prompt) has arrived; consume through it."""
    deadline = time.monotonic() + timeout
    while marker not in client.buf:
        if not client._fill(deadline):
            raise AssertionError(f"closed before {marker!r}: {client.buf!r}")
    client.buf = client.buf.split(marker, 1)[1]


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
