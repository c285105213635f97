"""A small IRC client for end-to-end tests, on gevent sockets (or a WebSocket).

It sends raw lines and reads parsed messages (irctokens), so tests assert
exactly what an IRC client would see: commands, numerics, parameters, tags.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from gevent import socket
from irctokens.line import Line, tokenise

from tests.helpers import DEFAULT_WAIT, ChatClient, TLSChatClient
from tests.ws_client import WsClient

#: What ends a registration burst: the end of the MOTD, or its absence.
END_OF_WELCOME = ("376", "422")


class IrcClient:
    """One IRC connection; ``messages`` holds every message received, in order."""

    def __init__(
        self,
        addr: tuple[str, int],
        *,
        cafile: str | None = None,
        ws: bool = False,
        timeout: float = DEFAULT_WAIT,
    ) -> None:
        self.timeout = timeout
        self.messages: list[Line] = []
        self.ws: WsClient | None = None
        self.conn: ChatClient | None = None
        if ws:
            self.ws = WsClient(addr, subprotocols=("text.ircv3.net",), timeout=timeout)
        elif cafile is not None:
            sock = socket.create_connection(addr, timeout=timeout)
            self.conn = TLSChatClient(sock, cafile, addr[0])
        else:
            self.conn = ChatClient(addr, timeout=timeout)

    def send(self, line: str) -> None:
        if self.ws is not None:
            self.ws.send(line)
        else:
            assert self.conn is not None
            self.conn.send(line.encode(), b"\r\n")

    def send_raw(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.send_raw(data)

    def raw_line(self, timeout: float | None = None) -> str:
        """The next line as received (for IRC over TCP, without its CR LF)."""
        if self.ws is not None:
            return self.ws.read_line(timeout or self.timeout)
        assert self.conn is not None
        line = self.conn.read_line(timeout or self.timeout)
        assert line.endswith("\r"), f"not CR LF ended: {line!r}"
        return line[:-1]

    def read(self, timeout: float | None = None) -> Line:
        msg = tokenise(self.raw_line(timeout))
        self.messages.append(msg)
        return msg

    def expect(self, *commands: str, timeout: float | None = None) -> Line:
        """Read until a message with one of ``commands`` (a name or numeric) arrives."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self.read(max(0.001, deadline - time.monotonic()))
            if msg.command in commands:
                return msg

    def collect(self, until: Iterable[str], timeout: float | None = None) -> list[Line]:
        """Every message up to and including the first with a command in ``until``."""
        stop = set(until)
        deadline = time.monotonic() + (timeout or self.timeout)
        got = []
        while True:
            msg = self.read(max(0.001, deadline - time.monotonic()))
            got.append(msg)
            if msg.command in stop:
                return got

    def register(self, nick: str, caps: Iterable[str] = (), password: str | None = None) -> list[Line]:
        """Register as ``nick`` (asking for ``caps`` first); returns the welcome burst."""
        wanted = list(caps)
        if wanted:
            self.send("CAP LS 302")
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} the tester")
        if wanted:
            self.expect("CAP")
            self.send(f"CAP REQ :{' '.join(wanted)}")
            ack = self.expect("CAP")
            assert ack.params[1] == "ACK", ack
            self.send("CAP END")
        return self.collect(END_OF_WELCOME)

    def sync(self, token: str = "sync") -> list[Line]:
        """Everything received before the answer to a PING (irctest's trick)."""
        self.send(f"PING {token}")
        got = self.collect(["PONG"])
        assert got[-1].params[-1] == token
        return got[:-1]

    def eof(self, timeout: float | None = None) -> list[str]:
        """The lines left until the server closes the connection."""
        if self.ws is not None:
            return self.ws.read_until_close(timeout or self.timeout)[0]
        assert self.conn is not None
        return [line.rstrip("\r") for line in self.conn.read_until_closed(timeout or self.timeout)]

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        elif self.conn is not None:
            self.conn.close()


@contextmanager
def opening(address: tuple[str, int]) -> Iterator[Callable[..., IrcClient]]:
    """A maker of IRC clients to ``address`` (registered as ``nick`` with ``caps`` if given),
    each closed on the way out: the body of the tests' ``irc`` fixtures."""
    opened: list[IrcClient] = []

    def open_client(nick: str | None = None, caps: tuple[str, ...] = ()) -> IrcClient:
        client = IrcClient(address)
        opened.append(client)
        if nick is not None:
            client.register(nick, caps)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            client.close()
