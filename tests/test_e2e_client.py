"""End-to-end: the client as a subprocess, piped and under a pseudo-terminal.

Piped runs talk to the in-process server and use ``gevent.subprocess`` so that
waiting for the client yields to the hub (where that server runs).  Terminal
runs use pexpect, whose waits block the whole process, so they talk to a
server run as a subprocess.
"""

from __future__ import annotations

import os
import re
import signal
import socket as stdsocket
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pexpect
import pytest
from gevent import subprocess as gsubprocess

from gevent_chat.client.render import nick_colour
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, wait_until

CLIENT = [sys.executable, "-m", "gevent_chat.client"]
COLOUR_SGR = re.compile(r"\x1b\[[0-9;]*?(?:3[0-7]|9[0-7]|2)m")


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    # No answer to cursor-position requests under pexpect; don't wait for one.
    env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", **extra)
    return env


def run_piped(
    server: ChatServer, args: list[str], data: bytes, timeout: float = 5
) -> gsubprocess.CompletedProcess:
    """Run the client with ``data`` on a piped stdin, cooperatively."""
    return gsubprocess.run(
        [*CLIENT, "--port", str(server.address[1]), *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        env=client_env(),
    )


def start_piped(server: ChatServer, args: list[str], stderr: bool = False) -> gsubprocess.Popen[bytes]:
    """Start the client with a piped stdin and stdout (and stderr if asked), cooperatively."""
    return gsubprocess.Popen(
        [*CLIENT, "--port", str(server.address[1]), *args],
        stdin=gsubprocess.PIPE,
        stdout=gsubprocess.PIPE,
        stderr=gsubprocess.PIPE if stderr else None,
        env=client_env(),
    )


# -- piped ---------------------------------------------------------------------------


def test_piped_client_with_nick_delivers_lines_and_exits_0(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    bob = connect("bob")
    done = run_piped(server, ["--nick", "bot"], b"hi\r\nsecond line\nlast without newline")
    assert done.returncode == 0, done.stderr
    bob.expect(r"^\*\*\* bot joined #lobby$")
    assert bob.read_line() == "bot: hi"
    assert bob.read_line() == "bot: second line"
    assert bob.read_line() == "bot: last without newline"
    assert bob.read_line() == "*** bot left"


def test_piped_client_without_nick_answers_prompt_with_first_line(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    bob = connect("bob")
    done = run_piped(server, [], b"carol\nhello\n")
    assert done.returncode == 0, done.stderr
    bob.expect(r"^\*\*\* carol joined #lobby$")
    assert bob.read_line() == "carol: hello"
    assert b"Welcome, carol!" in done.stdout


def test_piped_output_has_no_colour(server: ChatServer, connect: Callable[..., ChatClient]) -> None:
    bob = connect("bob")
    proc = start_piped(server, ["--nick", "bot"])
    try:
        bob.expect("bot joined")
        bob.send("colour me")
        out = b""
        with gevent.Timeout(5):
            while b"bob: colour me" not in out:
                out += proc.stdout.readline()
        rest, _ = proc.communicate(b"", timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert b"\x1b" not in out + rest


def test_nick_taken_exits_nonzero_with_one_line(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    done = run_piped(server, ["--nick", "ALICE"], b"never sent\n")
    assert done.returncode == 3
    assert done.stderr.decode().count("\n") == 1
    assert "taken" in done.stderr.decode()


def test_invalid_nick_exits_nonzero(server: ChatServer) -> None:
    done = run_piped(server, ["--nick", "no spaces"], b"")
    assert done.returncode == 3
    assert "invalid" in done.stderr.decode()


def test_unreachable_server_is_one_line_error() -> None:
    with stdsocket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [*CLIENT, "--port", str(port), "--nick", "x"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=5,
        env=client_env(),
    )
    assert done.returncode == 1
    err = done.stderr.decode()
    assert err.count("\n") == 1
    assert "cannot connect" in err
    assert "Traceback" not in err


def test_server_closing_while_input_open_is_an_error(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    bob = connect("bob")
    proc = start_piped(server, ["--nick", "bot"], stderr=True)
    try:
        bob.expect("bot joined")
        server.stop(timeout=1)
        proc.wait(timeout=5)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 1
    assert err.count("\n") == 1
    assert "closed by the server" in err
    assert "Traceback" not in err


# -- under a pseudo-terminal -----------------------------------------------------------


class ServerProcess:
    """``python -m gevent_chat.server`` as a subprocess, its log in a file."""

    def __init__(self, log: Path, port: int = 0) -> None:
        self.log = log
        with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", str(port)],
                stderr=stderr,
            )
        self.port = self._read_port()

    def _read_port(self) -> int:
        found: list[int] = []

        def listening() -> bool:
            m = re.search(r"listening on [^\s]+:(\d+)", self.log.read_text())
            if m:
                found.append(int(m.group(1)))
            return bool(found) or self.proc.poll() is not None

        wait_until(listening, what="the server's listening line")
        assert found, self.log.read_text()
        return found[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(port: int = 0) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(started)}.log", port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def spawn_client() -> Iterator[Callable[..., pexpect.spawn]]:
    children: list[pexpect.spawn] = []

    def spawn(port: int, *args: str, **env: str) -> pexpect.spawn:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "gevent_chat.client", "--port", str(port), *args],
            env=client_env(**env),
            dimensions=(24, 100),
            timeout=5,
            encoding="utf-8",
        )
        children.append(child)
        return child

    yield spawn
    for child in children:
        child.close(force=True)


def test_half_typed_line_survives_an_incoming_message(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    server = server_process()
    alice = spawn_client(server.port, "--nick", "alice", NO_COLOR="1")
    alice.expect("alice>")
    bob = ChatClient(("127.0.0.1", server.port))
    try:
        bob.register("bob")
        alice.send("hello wor")
        alice.expect("hello wor")
        bob.send("interrupting you")
        alice.expect("bob: interrupting you")
        alice.expect("alice> hello wor")  # the prompt and the typed text, redrawn below
        alice.send("ld\r")
        bob.expect(r"^alice: hello world$")
    finally:
        bob.close()


def test_tty_shows_nick_colours(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    server = server_process()
    alice = spawn_client(server.port, "--nick", "alice")
    alice.expect("alice>")
    bob = ChatClient(("127.0.0.1", server.port))
    try:
        bob.register("bob")
        bob.send("in colour")
        alice.expect(re.escape(f"\x1b[{nick_colour('bob')}mbob\x1b[0m: in colour"))
    finally:
        bob.close()


def test_tty_has_no_colour_with_no_color(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    server = server_process()
    alice = spawn_client(server.port, "--nick", "alice", NO_COLOR="1")
    alice.expect("alice>")
    bob = ChatClient(("127.0.0.1", server.port))
    try:
        bob.register("bob")
        bob.send("in black and white")
        alice.expect("bob: in black and white")
        seen = alice.before + alice.after
    finally:
        bob.close()
    assert "bob joined" in seen
    assert not COLOUR_SGR.search(seen), repr(seen)


@pytest.mark.parametrize(("keys", "status"), [("\x04", 0), ("/quit\r", 0), ("\x03", 130)])
def test_ctrl_d_quit_and_ctrl_c_leave_without_traceback(
    server_process: Callable[..., ServerProcess],
    spawn_client: Callable[..., pexpect.spawn],
    keys: str,
    status: int,
) -> None:
    server = server_process()
    alice = spawn_client(server.port, "--nick", "alice")
    alice.expect("alice>")
    alice.send(keys)
    alice.expect(pexpect.EOF)
    lflags = termios.tcgetattr(alice.child_fd)[3]  # the terminal as the client left it
    alice.close()
    assert alice.exitstatus == status
    assert "Traceback" not in alice.before
    assert lflags & termios.ICANON, "terminal left in raw mode"
    assert lflags & termios.ECHO, "terminal left without echo"


@pytest.mark.parametrize("keys", ["\x04", "/quit\r"], ids=["ctrl-d", "quit"])
def test_ctrl_d_leaves_with_the_bye_that_quit_shows(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn], keys: str
) -> None:
    """Ctrl-D only half-closed the socket, so the server never said goodbye."""
    server = server_process()
    alice = spawn_client(server.port, "--nick", "alice", NO_COLOR="1")
    alice.expect("alice>")
    alice.send(keys)
    alice.expect(r"\*\*\* bye")
    alice.expect(pexpect.EOF)
    alice.close()
    assert alice.exitstatus == 0


def test_reconnect_registers_again_after_server_restart(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    first = server_process()
    alice = spawn_client(first.port, "--nick", "alice", "--reconnect", NO_COLOR="1")
    alice.expect("alice>")
    first.stop()
    alice.expect("reconnecting in")
    second = server_process(first.port)  # the same port, as a restarted server would
    alice.expect("registered again as alice", timeout=8)  # backoff: 0.25 s, 0.5 s, 1 s... to be safe
    carol = ChatClient(("127.0.0.1", second.port))
    try:
        carol.register("carol")
        alice.expect("carol joined")
        alice.send("back again\r")
        carol.expect(r"^alice: back again$")
    finally:
        carol.close()


def test_reconnect_takes_a_suffixed_nick_if_still_held(
    server: ChatServer, connect: Callable[..., ChatClient]
) -> None:
    """The nick may be held by someone else once we are back: try ``nick_``."""
    proc = start_piped(server, ["--nick", "alice", "--reconnect"])
    try:
        bob = connect("bob")
        bob.expect("alice joined")
        squatter = connect()
        squatter.expect_prompt()
        # Cut alice's connection from the server side, and take her nick at
        # once: one line, against the client's reconnect after >= 0.25 s.
        (conn,) = [c for c in server.connections if c.nick == "alice"]
        conn.cut(None)
        bob.expect(r"^\*\*\* alice left")
        squatter.send("alice")
        squatter.expect(r"^\*\*\* Welcome, alice!")
        bob.expect(r"^\*\*\* alice_ joined", timeout=8)  # after one backoff delay (at most 0.5 s)
    finally:
        proc.kill()
        proc.wait()


def test_input_is_read_while_socket_is_read(server: ChatServer, connect: Callable[..., ChatClient]) -> None:
    """Lines arrive on stdout while stdin stays open and silent."""
    bob = connect("bob")
    proc = start_piped(server, ["--nick", "bot"])
    try:
        bob.expect("bot joined")
        bob.send("are you there")
        deadline = time.monotonic() + 5
        with gevent.Timeout(max(0.1, deadline - time.monotonic())):
            while b"bob: are you there" not in proc.stdout.readline():
                pass
        proc.stdin.write(b"yes\n")
        proc.stdin.flush()
        bob.expect(r"^bot: yes$")
    finally:
        proc.kill()
        proc.wait()


def test_tty_without_nick_shows_the_prompt_and_first_line_answers(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    server = server_process()
    alice = spawn_client(server.port, NO_COLOR="1")
    alice.expect("Enter your nickname:")
    alice.send("alice\r")
    alice.expect(r"\*\*\* Welcome, alice! 1 user online")
    alice.expect("alice>")


def test_tty_server_gone_while_typing_is_one_line_error(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    server = server_process()
    alice = spawn_client(server.port, "--nick", "alice", NO_COLOR="1")
    alice.expect("alice>")
    alice.send("half a thou")
    alice.expect("half a thou")
    server.stop()
    alice.expect(pexpect.EOF)
    alice.close()
    assert alice.exitstatus == 1
    assert "gevent-chat: connection to 127.0.0.1" in alice.before
    assert "closed by the server" in alice.before
    assert "Traceback" not in alice.before


def test_tty_refused_nick_exits_nonzero(
    server_process: Callable[..., ServerProcess], spawn_client: Callable[..., pexpect.spawn]
) -> None:
    server = server_process()
    holder = ChatClient(("127.0.0.1", server.port))
    try:
        holder.register("alice")
        alice = spawn_client(server.port, "--nick", "alice")
        alice.expect(pexpect.EOF)
        alice.close()
    finally:
        holder.close()
    assert alice.exitstatus == 3
    assert "nickname 'alice' refused" in alice.before
