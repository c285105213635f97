"""End-to-end: the terminal client over TLS and with a server password.

Piped runs talk to the in-process server through ``gevent.subprocess`` (so
waiting yields to the hub, where that server runs); the terminal run uses
pexpect against a server in a child process, as in ``test_e2e_client``.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import gevent
import pexpect
import pytest
from gevent import socket as gsocket
from gevent import subprocess as gsubprocess

from gevent_chat.client import tls
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess

MakeServer = Callable[..., ChatServer]
SpawnServer = Callable[..., ServerProcess]
CLIENT = [sys.executable, "-m", "gevent_chat.client"]
PASSWORD = "s3cret-Passw0rd"
EXIT_PASSWORD = 4
TLS_REQUIRED_LINE = b"*** this port requires TLS\n"


@pytest.fixture
def password_file(tmp_path: Path) -> str:
    path = tmp_path / "password"
    path.write_text(f"{PASSWORD}\nsecond line is ignored\n")
    return str(path)


def client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    return env


def run_piped(port: int, args: list[str], data: bytes) -> gsubprocess.CompletedProcess:
    """Run the client with ``data`` on a piped stdin, cooperatively."""
    return gsubprocess.run(
        [*CLIENT, "--port", str(port), *args], input=data, capture_output=True, timeout=5, env=client_env()
    )


def tls_client(server: ChatServer, cafile: str, nick: str) -> ChatClient:
    """A raw line client over TLS, registered as ``nick``."""
    client = ChatClient(server.address)
    client.sock = tls.client_context(cafile=cafile).wrap_socket(client.sock, server_hostname="127.0.0.1")
    client.register(nick)
    return client


def assert_one_line_error(done: gsubprocess.CompletedProcess, code: int, text: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == code, err
    assert err.count("\n") == 1, err
    assert text in err
    assert "Traceback" not in err


# -- TLS ---------------------------------------------------------------------------


def test_piped_tls_client_with_cafile_delivers_everything_and_exits_0(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    bob = tls_client(server, certfile, "bob")
    try:
        lines = b"".join(b"line %d\n" % i for i in range(50)) + b"last without newline"
        done = run_piped(server.address[1], ["--tls", "--cafile", certfile, "--nick", "bot"], lines)
        assert done.returncode == 0, done.stderr
        bob.expect(r"^\*\*\* bot joined #lobby$")
        got = [bob.read_line() for _ in range(51)]
        assert got == [f"bot: line {i}" for i in range(50)] + ["bot: last without newline"]
        assert bob.read_line() == "*** bot left"
        assert b"Welcome, bot!" in done.stdout
        # It said /quit and read on until the server closed (a TLS socket
        # cannot be half-closed: after shutdown(SHUT_WR) it can read no more).
        assert done.stdout.endswith(b"*** bye\n")
        assert done.stderr == b""
    finally:
        bob.close()


def test_piped_tls_client_answers_the_prompt_and_quits_cleanly(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    bob = tls_client(server, certfile, "bob")
    try:
        data = b"carol\nhello\n/quit see you\nnot sent\n"
        done = run_piped(server.address[1], ["--cafile", certfile], data)
        assert done.returncode == 0, done.stderr
        bob.expect(r"^\*\*\* carol joined #lobby$")
        assert bob.read_line() == "carol: hello"
        assert bob.read_line().startswith("*** carol left")
    finally:
        bob.close()


def test_insecure_accepts_a_self_signed_certificate(make_server: MakeServer, cert: tuple[str, str]) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    bob = tls_client(server, certfile, "bob")
    try:
        done = run_piped(server.address[1], ["--tls", "--insecure", "--nick", "bot"], b"unverified hi\n")
        assert done.returncode == 0, done.stderr
        bob.expect(r"^bot: unverified hi$")
    finally:
        bob.close()


def test_self_signed_certificate_without_cafile_is_a_one_line_verify_error(
    make_server: MakeServer, cert: tuple[str, str]
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile)
    done = run_piped(server.address[1], ["--tls", "--nick", "bot"], b"never sent\n")
    assert_one_line_error(done, 1, "certificate verify failed")
    assert len(server.registry) == 0


def test_tls_to_a_plaintext_server_is_a_one_line_error(server: ChatServer) -> None:
    done = run_piped(server.address[1], ["--tls", "--insecure", "--nick", "bot"], b"never sent\n")
    assert_one_line_error(done, 1, "the server does not speak TLS: try without --tls")


def test_tls_to_a_plaintext_server_process_is_a_one_line_error(spawn_server: SpawnServer) -> None:
    """Against a real server process, as a user would meet it."""
    port = spawn_server().wait_listening()[1]
    done = run_piped(port, ["--tls", "--insecure", "--nick", "bot"], b"never sent\n")
    assert_one_line_error(done, 1, "does not speak TLS")


def test_plaintext_client_to_a_tls_server_says_try_tls_when_closed(
    spawn_server: SpawnServer, cert: tuple[str, str]
) -> None:
    """A TLS port closes a silent connection unanswered at the end of its
    registration window; the client's error suggests TLS."""
    certfile, keyfile = cert
    port = spawn_server(
        "--certfile", certfile, "--keyfile", keyfile, "--register-timeout", "1"
    ).wait_listening()[1]
    done = run_piped(port, ["--nick", "bot"], b"never sent\n")
    assert_one_line_error(done, 1, "before it said anything (if it speaks TLS, try --tls)")


def test_plaintext_client_to_a_silent_tls_server_hints_at_tls_early(
    spawn_server: SpawnServer, cert: tuple[str, str]
) -> None:
    """With the default 60 s registration timeout the hint comes after a few seconds, not a minute."""
    certfile, keyfile = cert
    port = spawn_server("--certfile", certfile, "--keyfile", keyfile).wait_listening()[1]
    proc = gsubprocess.Popen(
        [*CLIENT, "--port", str(port), "--nick", "bot"],
        stdin=gsubprocess.PIPE,
        stdout=gsubprocess.PIPE,
        stderr=gsubprocess.DEVNULL,
        env={**client_env(), "NO_COLOR": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # within the test's 10 s timeout
        assert "said nothing for 3 s: if it speaks TLS, try --tls" in line
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.mark.parametrize(
    "first",
    [b"\x15\x03\x03\x00\x02\x02\x32", TLS_REQUIRED_LINE],
    ids=["tls-alert-record", "server-notice"],
)
def test_plaintext_client_recognises_a_tls_answer(first: bytes) -> None:
    """A server that answers with a TLS record or its notice: one line, status 1, no wait."""
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(first)
            conn.recv(1)  # until the client closes

    server = gevent.spawn(answer)
    try:
        done = run_piped(listener.getsockname()[1], ["--nick", "bot"], b"never sent\n")
        assert_one_line_error(done, 1, "speaks TLS: try --tls")
    finally:
        server.kill()
        listener.close()


def test_cafile_with_insecure_is_a_usage_error(server: ChatServer, cert: tuple[str, str]) -> None:
    done = run_piped(server.address[1], ["--cafile", cert[0], "--insecure"], b"")
    assert_one_line_error(done, 2, "contradict")


# -- server password ---------------------------------------------------------------


def test_password_file_right_password_registers_and_delivers(
    make_server: MakeServer, password_file: str
) -> None:
    server = make_server(password=PASSWORD, password_delay=0.05)
    bob = ChatClient(server.address)
    try:
        bob.send(PASSWORD)
        bob.register("bob")
        done = run_piped(server.address[1], ["--password-file", password_file, "--nick", "bot"], b"hi\n")
        assert done.returncode == 0, done.stderr
        bob.expect(r"^\*\*\* bot joined #lobby$")
        assert bob.read_line() == "bot: hi"
        assert PASSWORD.encode() not in done.stdout + done.stderr
    finally:
        bob.close()


def test_password_and_tls_together_let_the_prompt_answer_the_nick(
    make_server: MakeServer, cert: tuple[str, str], password_file: str
) -> None:
    certfile, keyfile = cert
    server = make_server(certfile=certfile, keyfile=keyfile, password=PASSWORD, password_delay=0.05)
    args = ["--cafile", certfile, "--password-file", password_file]
    done = run_piped(server.address[1], args, b"carol\n/who\n")
    assert done.returncode == 0, done.stderr
    assert b"Welcome, carol!" in done.stdout


def test_wrong_password_is_shown_and_exits_4(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server(password=PASSWORD, password_delay=0.05)
    wrong = tmp_path / "wrong"
    wrong.write_text("guess\n")
    done = run_piped(server.address[1], ["--password-file", str(wrong), "--nick", "bot"], b"never sent\n")
    assert_one_line_error(done, EXIT_PASSWORD, "refused the password")
    assert b"*** wrong password" in done.stdout
    assert len(server.registry) == 0


def test_piped_without_password_file_to_a_password_server_exits_4(make_server: MakeServer) -> None:
    server = make_server(password=PASSWORD, password_delay=0.05)
    done = run_piped(server.address[1], ["--nick", "bot"], PASSWORD.encode() + b"\n")
    assert_one_line_error(done, EXIT_PASSWORD, "server requires a password (--password-file)")
    assert len(server.registry) == 0


def test_unreadable_password_file_is_a_usage_error(server: ChatServer, tmp_path: Path) -> None:
    done = run_piped(server.address[1], ["--password-file", str(tmp_path / "missing")], b"")
    assert_one_line_error(done, 2, "--password-file")


def test_reconnect_sends_the_password_again(make_server: MakeServer, password_file: str) -> None:
    server = make_server(password=PASSWORD, password_delay=0.05)
    bob = ChatClient(server.address)
    args = ["--nick", "bot", "--reconnect", "--password-file", password_file]
    proc = gsubprocess.Popen(
        [*CLIENT, "--port", str(server.address[1]), *args],
        stdin=gsubprocess.PIPE,
        stdout=gsubprocess.DEVNULL,
        stderr=gsubprocess.DEVNULL,
        env=client_env(),
    )
    try:
        bob.send(PASSWORD)
        bob.register("bob")
        bob.expect(r"^\*\*\* bot joined #lobby$")
        (conn,) = [c for c in server.connections if c.nick == "bot"]
        conn.cut(None)
        bob.expect(r"^\*\*\* bot left")
        bob.expect(r"^\*\*\* bot joined #lobby$", timeout=5)  # after one backoff delay (at most 0.5 s)
    finally:
        proc.kill()
        proc.wait()
        bob.close()


# -- the password asked on a terminal ----------------------------------------------


def spawn_tty(port: int, *args: str) -> pexpect.spawn:
    """The client under a pseudo-terminal; the caller closes it."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "gevent_chat.client", "--port", str(port), *args],
        env={**client_env(), "NO_COLOR": "1"},
        dimensions=(24, 100),
        timeout=5,
        encoding="utf-8",
    )


def test_tty_asks_the_password_without_echo(spawn_server: SpawnServer, password_file: str) -> None:
    server = spawn_server("--password-file", password_file, "--password-delay", "0.05")
    port = server.wait_listening()[1]
    seen = io.StringIO()
    child = spawn_tty(port, "--nick", "alice")
    child.logfile_read = seen
    try:
        child.expect("Password:")
        child.send(PASSWORD + "\r")
        child.expect(r"\*\*\* Welcome, alice!")
        child.expect("alice>")
        child.send("/quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    # Redraws may come in pieces with cursor moves between: compare the text alone.
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.getvalue())
    assert PASSWORD not in shown
    assert re.search(r"Password:\s*\*", shown), shown  # typed characters are shown as *


@pytest.mark.parametrize(("key", "status"), [("\x04", EXIT_PASSWORD), ("\x03", 130)])
def test_tty_ctrl_d_or_ctrl_c_at_the_password_prompt_leaves(
    spawn_server: SpawnServer, password_file: str, key: str, status: int
) -> None:
    server = spawn_server("--password-file", password_file, "--password-delay", "0.05")
    port = server.wait_listening()[1]
    child = spawn_tty(port, "--nick", "alice")
    try:
        child.expect("Password:")
        child.send(key)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == status
    assert "Traceback" not in child.before
