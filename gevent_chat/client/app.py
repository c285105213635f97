"""The terminal client's connection and event loop (``Client``); ``cli`` is its command line.

SHELL.  One main greenlet owns the connection and acts on events, in order,
from a single queue: lines and prompts from the socket-reader greenlet, lines
from the input greenlet, and signals.  Input comes from one of two fronts
(``fronts.py``): ``TerminalFront`` (prompt_toolkit in an OS thread, so
arriving lines never scramble the input) or ``PipeFront`` (stdin read
cooperatively while the socket is read at the same time).

Steps: connect (over TLS with ``--tls``, verified against ``--cafile`` or
the system's CAs unless ``--insecure``); answer a ``Password: `` prompt (from
``--password-file``, else asked without echo on a terminal; input is not read
until the server's first prompt, so the line editor is free to ask); register
(with ``--nick`` by itself, otherwise the user's first line answers the
server's prompt); then send each input line and show each received line,
neutralised by ``render``.  At end of input a registered client sends
``/quit`` (so Ctrl-D leaves as ``/quit`` does), the socket is half-closed and
the client waits briefly for the server to close; over TLS, where
half-closing is impossible (gevent's ``SSLSocket.shutdown`` drops the TLS
state), the ``/quit`` alone ends it.  A dropped connection is an
error, unless ``--reconnect`` is given (which sends the password again).

Exit status: 0 done; 1 unreachable, TLS handshake or certificate check
failed, or connection lost; 2 bad command line (argparse's code; also an
unreadable ``--password-file`` or ``--cafile``); 3 ``--nick`` refused;
4 password refused by the server (``*** wrong password``), or needed but not
given (piped without ``--password-file``, or Ctrl-D at the password prompt);
130 and 143 on SIGINT and SIGTERM.

Never: monkey-patch, write to the socket from more than one greenlet, or
print a traceback for an expected failure (one line on stderr instead).
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import socket
import sys
import time
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.queue import Empty, Queue

from ..core.address import format_address
from . import render, tls
from .fronts import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PASSWORD,
    EXIT_REFUSED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    INTERRUPT,
    Stop,
)
from .reconnect import alternate_nick, backoff_delay
from .tls import describe_error

__all__ = ["PROG", "Client"]

#: The client's one name in usage and error lines, however it was started.
PROG = "gevent-chat"
#: After the input ends we half-close and wait this long for the server to close.
CLOSE_GRACE_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 10.0
#: A chat server speaks first at once; silent this long, it may be a TLS port.
GREETING_SECONDS = 3.0
#: What a TLS server's first bytes look like: a handshake or alert record, TLS 1.x.
TLS_RECORD_STARTS = (b"\x15\x03", b"\x16\x03")
#: The line a TLS server sends a plaintext client.
TLS_REQUIRED = "*** this port requires TLS"
RECV_BYTES = 65536
#: Input lines read ahead of the socket; past this the input is not read.
MAX_PENDING_LINES = 64

#: What the main greenlet acts on: (kind, ...): input, interrupt, prompt, line, closed.
Item = tuple[Any, ...]


# -- the client --------------------------------------------------------------------


class Client:
    """One user's session, across reconnections when ``--reconnect`` is on."""

    def __init__(
        self,
        args: argparse.Namespace,
        front: Any,
        colour: bool,
        context: Any = None,
        password: str | None = None,
    ) -> None:
        self.addr = (args.host, args.port)
        self.reconnect = args.reconnect
        self.context = context  # a gevent.ssl.SSLContext for --tls, else None
        self.password = password  # from --password-file, or asked once, kept for reconnects
        self.opened = Event()  # the server's first word came: input may be read
        self.front = front
        self.colour = colour
        self.events: Queue[Item] = Queue()
        self.pending: collections.deque[str] = collections.deque()
        self.room_for_input = Event()
        self.room_for_input.set()
        self.input_done = False
        self.nick: str | None = None  # confirmed by the server
        self.wanted: str | None = args.nick  # what we register as after a reconnect
        self.room: str | None = None
        self.sock: Any = None
        self.lost = ""  # how the last connection ended
        self.pings: dict[str, float] = {}
        self.ping_seq = 0
        #: Reconnection tries since we were last registered: a connection that
        #: is accepted and then dropped does not restart the backoff.
        self.retries = 0
        self._reset_connection()

    def _reset_connection(self) -> None:
        self.registered = False
        self.prompted = False  # the server waits for a nickname
        self.answered = False
        self.nick_try = 0
        self.quit_sent = False
        self.half_closed = False
        self.close_deadline: float | None = None
        self.heard = False  # the server has sent something on this connection
        self.greeting_deadline: float | None = (
            None if self.context is not None else time.monotonic() + GREETING_SECONDS
        )

    # -- running -------------------------------------------------------------------

    def run(self) -> int:
        """Run until the user leaves or the connection fails; returns the exit code."""
        try:
            self.sock = self._connect()
        except OSError as err:
            return self._fail(EXIT_ERROR, f"cannot connect to {self._where()}: {describe_error(err)}")
        main = gevent.getcurrent()
        hub = gevent.get_hub()

        def interrupt(code: int) -> None:
            # From the hub, so that the main greenlet stops wherever it waits.
            hub.loop.run_callback(main.throw, Stop(code))

        watchers = [
            gevent.signal_handler(signum, interrupt, code)
            for signum, code in ((signal.SIGINT, EXIT_SIGINT), (signal.SIGTERM, EXIT_SIGTERM))
        ]
        self.front.start()
        reader = None
        code, message = EXIT_OK, None
        inputs = gevent.spawn(self._input_loop)
        try:
            while True:
                reader = gevent.spawn(self._read_loop, self.sock)
                if self._serve():
                    break
                reader.kill()
                self.sock.close()
                if not self.reconnect:
                    raise Stop(EXIT_ERROR, f"connection to {self._where()} {self.lost}")
                self.sock = self._reconnect()
                if self.sock is None:
                    break
        except Stop as stop:
            code, message = stop.code, stop.message
        finally:
            for w in watchers:
                w.cancel()
            if reader is not None:
                reader.kill()
            if self.sock is not None:
                self.sock.close()
            self.front.stop()
            inputs.kill()
        return self._fail(code, message) if message else code

    def _fail(self, code: int, message: str) -> int:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)
        return code

    def _where(self) -> str:
        return format_address(*self.addr)

    def _connect(self) -> Any:
        sock = gsocket.create_connection(self.addr, timeout=CONNECT_TIMEOUT_SECONDS)
        if self.context is not None:
            try:  # the handshake, under the connect timeout
                sock = self.context.wrap_socket(sock, server_hostname=self.addr[0])
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _serve(self) -> bool:
        """Handle events until this connection ends; True if the user is done."""
        self._reset_connection()
        if self.nick is None:
            self.front.set_prompt("")
        while True:
            timeout = None
            if self.close_deadline is not None:
                timeout = self.close_deadline - time.monotonic()
                if timeout <= 0:
                    return True  # the server kept the connection open past the grace
            elif self.greeting_deadline is not None:
                timeout = max(0.0, self.greeting_deadline - time.monotonic())
            try:
                event = self.events.get(timeout=timeout)
            except Empty:
                if self.close_deadline is not None:
                    return True
                self.greeting_deadline = None
                self._note(
                    f"the server has said nothing for {GREETING_SECONDS:.0f} s: if it speaks TLS, try --tls"
                )
                continue
            if event[0] == "input":
                self._pump()
            elif event[0] == "interrupt":
                raise Stop(EXIT_SIGINT)
            elif event[1] is not self.sock:
                continue  # left over from an earlier connection
            elif event[0] == "tls" or (event[0] == "line" and event[2].startswith(TLS_REQUIRED)):
                raise Stop(EXIT_ERROR, f"the server at {self._where()} speaks TLS: try --tls")
            elif event[0] == "prompt" and render.is_password_prompt(event[2]):
                self._on_password_prompt()
            elif event[0] == "prompt":
                self._on_prompt(event[2])
            elif event[0] == "line":
                self._on_line(event[2])
            elif event[0] == "closed":
                if self.half_closed:
                    return True
                self.lost = f"lost ({event[2]})" if event[2] else "closed by the server"
                if not self.heard and self.context is None:
                    self.lost += " before it said anything (if it speaks TLS, try --tls)"
                return False
            self.heard, self.greeting_deadline = True, None
            self.opened.set()

    # -- the other greenlets -------------------------------------------------------

    def _read_loop(self, sock: Any) -> None:
        """Socket reader: frame what arrives into events for the main greenlet."""
        frames = render.Incoming()
        error = None
        first = self.context is None  # only a plaintext client can meet a TLS record
        try:
            while True:
                data = sock.recv(RECV_BYTES)
                if not data:
                    break
                if first and data.startswith(TLS_RECORD_STARTS):
                    self.events.put(("tls", sock))
                    return
                first = False
                for is_prompt, text in frames.feed(data):
                    self.events.put(("prompt" if is_prompt else "line", sock, text))
        except OSError as err:
            error = describe_error(err)
        tail = frames.close()
        if tail is not None:
            self.events.put(("line", sock, tail))
        self.events.put(("closed", sock, error))

    def _input_loop(self) -> None:
        """Input reader: lines into ``pending``, reading ahead at most a little.

        Starts once the server has spoken, so that a password can be asked
        first (the terminal front has one line editor).
        """
        self.opened.wait()
        while True:
            self.room_for_input.wait()
            line = self.front.read_line()
            if line is INTERRUPT:
                self.events.put(("interrupt",))
                return
            if line is None:
                self.input_done = True
                self.events.put(("input",))
                return
            self.pending.append(line)
            if len(self.pending) >= MAX_PENDING_LINES:
                self.room_for_input.clear()
            self.events.put(("input",))
            if _is_quit(line):
                return  # no new prompt while the server says goodbye

    # -- acting on events ----------------------------------------------------------

    def _on_password_prompt(self) -> None:
        """Answer ``Password: `` with ours, asking for it once if need be."""
        if self.registered:
            return
        if self.password is None:
            if not self.front.interactive:
                raise Stop(EXIT_PASSWORD, "server requires a password (--password-file)")
            secret = self.front.read_secret("Password: ")
            if secret is INTERRUPT:
                raise Stop(EXIT_SIGINT)
            if secret is None:
                raise Stop(EXIT_PASSWORD, "server requires a password")
            self.password = secret
        self._send(self.password)

    def _on_prompt(self, text: str) -> None:
        self.prompted, self.answered = True, False
        if self.registered:
            return
        if self._nick_to_claim() is None:
            if self.front.interactive:
                self.front.set_prompt(text)
            else:
                self.front.show(text)
        self._pump()

    def _nick_to_claim(self) -> str | None:
        """The nick we register by ourselves, if any (--nick, or after a reconnect)."""
        return None if self.wanted is None else alternate_nick(self.wanted, self.nick_try)

    def _on_line(self, text: str) -> None:
        shown = text
        token = _pong_token(text)
        if token is not None and token in self.pings:
            lag = (time.monotonic() - self.pings.pop(token)) * 1000
            shown = f"{text} (lag {lag:.1f} ms)"
        self.front.show(render.render(shown, self.colour))
        if not self.registered:
            self._on_registration_reply(text)
        else:
            self._track(text)

    def _on_registration_reply(self, text: str) -> None:
        if render.is_wrong_password(text):
            raise Stop(EXIT_PASSWORD, "the server refused the password")
        nick = render.welcome_nick(text)
        if nick is not None:
            again = self.nick is not None
            self.registered, self.nick = True, nick
            self.retries = 0
            if self.wanted is None:
                self.wanted = nick  # answered the prompt by hand: keep it for reconnects
            self.front.set_prompt(f"{nick}> ")
            if again:
                self._note(f"registered again as {nick}")
                if self.room and self.room.casefold() != "lobby":
                    self._send(f"/join {self.room}")
            self._pump()
            return
        reason = render.refusal_reason(text)
        claimed = self._nick_to_claim()
        if reason is None or claimed is None:
            return
        if self.nick is None or "taken" not in reason.lower():
            raise Stop(EXIT_REFUSED, f"nickname {claimed!r} refused: {reason}")
        self.nick_try += 1  # held (perhaps by our own old connection): try nick_

    def _track(self, text: str) -> None:
        """Follow renames and room changes, to restore them on reconnect."""
        nick = render.renamed_to(text)
        if nick is not None:
            self.nick = self.wanted = nick
            self.front.set_prompt(f"{nick}> ")
        if text.startswith("*** you joined #"):
            self.room = text[len("*** you joined #") :].strip()

    def _pump(self) -> None:
        """Send what may be sent now; half-close once the input is done."""
        if not self.registered:
            if self.prompted and not self.answered:
                nick = self._nick_to_claim()
                if nick is None and self.pending:
                    nick = self.pending.popleft()
                    if _is_quit(nick):  # leaving before choosing a nick
                        self.pending.clear()
                        self._half_close()
                        return
                if nick is not None:
                    self.answered = True
                    self._send(nick)
        else:
            while self.pending and not self.half_closed:
                self._send_user_line(self.pending.popleft())
        if len(self.pending) < MAX_PENDING_LINES:
            self.room_for_input.set()
        waiting_to_register = self._nick_to_claim() is not None and not self.registered
        if self.input_done and not self.pending and not waiting_to_register:
            self._half_close()

    def _send_user_line(self, line: str) -> None:
        words = line.split(maxsplit=1)
        if words and words[0].lower() == "/ping":
            if len(words) == 1:
                self.ping_seq += 1
                line = f"/ping lag{self.ping_seq}"
                words = line.split(maxsplit=1)
            self.pings[words[1].strip()] = time.monotonic()
        self._send(line)
        if _is_quit(line):
            self.quit_sent = True
            self._half_close()

    def _send(self, line: str) -> None:
        try:
            self.sock.sendall(line.encode("utf-8", "surrogateescape") + b"\n")
        except OSError:
            # The reader sees the same failure and reports the closed connection.
            tls.shutdown_fd(self.sock, socket.SHUT_RDWR)

    def _half_close(self) -> None:
        """We send nothing more; the server closes when it has read everything.

        A registered client says ``/quit`` last, so that leaving by the end
        of input (Ctrl-D) ends as ``/quit`` does, with the server's
        ``*** bye``; the server reads it after every line before it.  A TLS
        socket cannot be half-closed (``SSLSocket.shutdown`` drops its TLS
        state), so there the ``/quit`` is all; an unregistered TLS client
        has nothing in flight and just leaves.
        """
        if self.half_closed:
            return
        self.half_closed = True
        self.close_deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        if self.registered and not self.quit_sent:
            self.quit_sent = True
            self._send("/quit")
        if self.context is None:
            tls.shutdown_fd(self.sock, socket.SHUT_WR)
        elif not self.registered:
            self.close_deadline = time.monotonic()

    def _note(self, text: str) -> None:
        """A notice of the client's own, shown like the server's."""
        self.front.show(render.render(f"*** {text}", self.colour))

    # -- reconnecting --------------------------------------------------------------

    def _reconnect(self) -> Any:
        """Retry with capped, jittered backoff; the new socket, or None if the user left."""
        who = self.nick or self.wanted
        self.front.set_prompt(f"(offline) {who}> " if who else "(offline) ")
        why = f"connection {self.lost}"
        while True:
            delay = backoff_delay(self.retries, random.random())
            self.retries += 1
            self._note(f"{why}; reconnecting in {delay:.1f} s")
            if self._wait_offline(time.monotonic() + delay):
                return None
            try:
                sock = self._connect()
            except OSError as err:
                why = f"cannot connect to {self._where()}: {describe_error(err)}"
                continue
            self._note(f"reconnected to {self._where()}")
            return sock

    def _wait_offline(self, deadline: float) -> bool:
        """Wait until ``deadline`` while disconnected; True if the user left meanwhile."""
        while (timeout := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=timeout)
            except Empty:
                return False
            if event[0] == "interrupt":
                raise Stop(EXIT_SIGINT)
            if event[0] != "input":
                continue
            if self.front.interactive:
                # Typed lines are not kept for later: the user decides again.
                while self.pending:
                    line = self.pending.popleft()
                    if _is_quit(line):
                        return True
                    self._note("not connected: line not sent (it is in your history)")
                self.room_for_input.set()
            if self.input_done and not self.pending:
                return True
        return False


def _is_quit(line: str) -> bool:
    """``/quit`` or ``/QUIT reason`` (command names are case-insensitive)."""
    words = line.split(maxsplit=1)
    return bool(words) and words[0].lower() == "/quit"


def _pong_token(text: str) -> str | None:
    if text.startswith("*** pong "):
        return text[len("*** pong ") :].strip()
    return None
