"""A WebSocket chat client for tests: wsproto's client side on a gevent socket.

It plays a browser on the web port: it opens ``/ws`` with an ``Origin``
(the page's own unless told otherwise), sends one text frame per line and
reads one line per text message.  Pings are answered unless ``auto_pong``
is off.  As in ``helpers.ChatClient``, every wait has a deadline.
"""

from __future__ import annotations

import re
import socket as stdsocket
import time
from collections import deque

from gevent import socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from gevent_chat.client import tls as client_tls

DEFAULT_WAIT = 5.0


class HandshakeRefused(AssertionError):
    """The server answered the upgrade with an HTTP error."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"handshake refused: {status} {body!r}")
        self.status = status
        self.body = body


class WsClient:
    """One WebSocket to ``/ws``; ``lines`` holds every line received, in order."""

    def __init__(
        self,
        addr: tuple[str, int],
        *,
        origin: str | None = "same",
        cafile: str | None = None,
        rcvbuf: int | None = None,
        auto_pong: bool = True,
        timeout: float = DEFAULT_WAIT,
        subprotocols: tuple[str, ...] = (),
    ) -> None:
        """``subprotocols`` offered: none speaks the line protocol, ``(SUBPROTOCOL,)`` IRC."""
        self.timeout = timeout
        self.subprotocols = list(subprotocols)
        self.auto_pong = auto_pong
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Event] = deque()
        self.lines: list[str] = []
        self.pings = 0
        self.close_code: int | None = None
        self.subprotocol: str | None = None
        self._text = ""
        sock = socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            if cafile is not None:
                sock = client_tls.client_context(cafile=cafile).wrap_socket(sock, server_hostname=addr[0])
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        try:
            self._handshake(addr, origin, "https" if cafile else "http")
        except BaseException:
            sock.close()
            raise

    def _handshake(self, addr: tuple[str, int], origin: str | None, scheme: str) -> None:
        host = f"{addr[0]}:{addr[1]}"
        headers = []
        if origin is not None:
            headers.append(("Origin", f"{scheme}://{host}" if origin == "same" else origin))
        request = Request(host=host, target="/ws", subprotocols=self.subprotocols, extra_headers=headers)
        self._send(self.ws.send(request))
        deadline = time.monotonic() + self.timeout
        event = self._next(deadline)
        if isinstance(event, RejectConnection):
            status, body = event.status_code, b""
            while event.has_body:
                data = self._next(deadline)
                assert isinstance(data, RejectData)
                body += data.data
                if data.body_finished:
                    break
            raise HandshakeRefused(status, body)
        assert isinstance(event, AcceptConnection), event
        self.subprotocol = event.subprotocol

    # -- sending -------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, text: str) -> None:
        self._send(self.ws.send(TextMessage(data=text)))

    def send_binary(self, data: bytes) -> None:
        self._send(self.ws.send(BytesMessage(data=data)))

    def send_fragments(self, *parts: str) -> None:
        """One text message in several frames."""
        for i, part in enumerate(parts):
            self._send(self.ws.send(TextMessage(data=part, message_finished=i == len(parts) - 1)))

    def close(self, code: int = 1000) -> None:
        """Start the close handshake (if still open) and close the socket."""
        try:
            if self.close_code is None:
                self._send(self.ws.send(CloseConnection(code=code)))
        except Exception:
            pass
        self.sock.close()

    # -- receiving -----------------------------------------------------------------------
    def _next(self, deadline: float) -> Event:
        """The next event from the server; AssertionError at EOF or on timeout."""
        while not self.events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; received so far: {self.lines[-5:]!r}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError as exc:
                raise AssertionError(f"timed out; received so far: {self.lines[-5:]!r}") from exc
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, Ping):
                    self.pings += 1
                    if self.auto_pong:
                        self._send(self.ws.send(event.response()))
                    continue
                self.events.append(event)
            if not data and not self.events:
                raise AssertionError(f"connection closed; received so far: {self.lines[-5:]!r}")
        return self.events.popleft()

    def read_line(self, timeout: float | None = None) -> str:
        """The next text message (one line, as the server sends them)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            event = self._next(deadline)
            if isinstance(event, CloseConnection):
                self.close_code = event.code
                raise AssertionError(f"closed ({event.code}); received so far: {self.lines[-5:]!r}")
            assert isinstance(event, TextMessage), f"not text: {event!r}"
            self._text += event.data
            if event.message_finished:
                line, self._text = self._text, ""
                self.lines.append(line)
                return line

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """Read lines until one matches ``pattern`` (re.search)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = re.search(pattern, self.read_line(max(0.001, deadline - time.monotonic())))
            if m:
                return m

    def register(self, nick: str) -> str:
        """Answer the nickname prompt; returns the welcome line."""
        assert self.expect(r"nickname: $").string == "Enter your nickname: "
        self.send(nick)
        return self.expect(r"^\*\*\* Welcome").string

    def read_until_close(self, timeout: float | None = None) -> tuple[list[str], int]:
        """Lines until the server's close frame, and its code; answers the close."""
        deadline = time.monotonic() + (timeout or self.timeout)
        start = len(self.lines)
        while True:
            event = self._next(deadline)
            if isinstance(event, CloseConnection):
                self.close_code = event.code
                try:
                    self._send(self.ws.send(event.response()))
                except OSError:
                    pass
                return self.lines[start:], event.code
            if isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    self.lines.append(self._text)
                    self._text = ""

    def eof(self, timeout: float | None = None) -> bool:
        """True once the server has closed the TCP connection (read until then)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except OSError:
                return True


def http_request(addr: tuple[str, int], data: bytes, timeout: float = DEFAULT_WAIT) -> tuple[int, bytes]:
    """Send raw request bytes; the response's status and all of it, read until the server closes."""
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(data)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return int(got.split(b" ", 2)[1]), got


def upgrade_request(host: str, extra: str = "", key: str = "dGhlIHNhbXBsZSBub25jZQ==") -> bytes:
    """A hand-made WebSocket handshake for ``/ws``, with ``extra`` header lines."""
    return (
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()
