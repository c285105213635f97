"""A raw RESP connection for the bus's hot path: commands out in one write, hiredis in.

SHELL.  redis-py's per-command machinery (argument encoding, retry wrapper,
response callbacks, a pipeline object per round trip) costs more Python
than the chat's own delivery of a line.  The publisher and the subscriber
therefore talk to Redis through ``RespConnection``: a connection that
redis-py made and set up (its gevent socket class from ``link``, TLS, AUTH,
SELECT, CLIENT SETNAME), then used directly.  Commands are packed with
hiredis's ``pack_command`` and written together with one ``sendall``; replies
are parsed by a ``hiredis.Reader`` from whatever one ``recv`` brought, so a
burst of replies or of published messages costs one system call.

Error replies come back as ``hiredis.ReplyError`` values, not exceptions:
the caller decides per reply.  A closed or broken connection raises
``redis.ConnectionError`` (or the socket's ``OSError``/``TimeoutError``),
which ``link.FAILURES`` catches.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import hiredis
import redis

__all__ = ["Command", "ReplyError", "RespConnection", "pack"]

#: One argument of a command.
Arg = str | bytes | int
#: One command: its name, then its arguments.
Command = Sequence[Arg]
ReplyError = hiredis.ReplyError

#: Bytes asked of the socket per ``recv``.
READ_SIZE = 65536

# hiredis's stub types the tuple as having one element.
_pack_command = cast("Callable[[tuple[Arg, ...]], bytes]", hiredis.pack_command)


def pack(commands: Iterable[Command]) -> bytes:
    """The RESP encoding of ``commands``, back to back (a pipeline)."""
    return b"".join([_pack_command(tuple(command)) for command in commands])


class RespConnection:
    """One connection to Redis, written and read raw.

    ``conn`` is a new, unconnected connection of redis-py's (a pool's
    ``make_connection()``), typed loosely as redis-py's releases type it
    differently.
    ``timeout`` bounds each write and each wait for a reply (None: wait for
    ever, for a subscription whose liveness is checked by pings).
    """

    def __init__(self, conn: Any, timeout: float | None) -> None:
        conn.connect()  # the pool's connection class: gevent socket, TLS, AUTH, SELECT, SETNAME
        sock: Any = conn._sock  # redis-py keeps the connected socket here
        if sock is None:
            raise redis.ConnectionError("connection not open")
        sock.settimeout(timeout)
        self._conn = conn
        self.sock = sock
        self.reader = hiredis.Reader()
        self.closed = False

    def write(self, data: bytes) -> None:
        """Send packed commands (see ``pack``).

        One ``send`` first: gevent's ``sendall`` asks the socket for its buffer
        size (a system call) each time, for what one ``send`` nearly always does.
        """
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(memoryview(data)[sent:])

    def read(self) -> Any:
        """The next reply (or pushed message), waiting for it."""
        reply = self.reader.gets()
        while reply is False:
            self._fill()
            reply = self.reader.gets()
        return reply

    def read_many(self) -> list[Any]:
        """Every reply already received, waiting for at least one."""
        reply = self.reader.gets()
        while reply is False:
            self._fill()
            reply = self.reader.gets()
        replies = [reply]
        reply = self.reader.gets()
        while reply is not False:
            replies.append(reply)
            reply = self.reader.gets()
        return replies

    def read_ready(self) -> list[Any]:
        """Every reply received so far, without waiting (an empty list if none came yet)."""
        sock = self.sock
        timeout = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            while True:
                try:
                    data = sock.recv(READ_SIZE)
                except (BlockingIOError, ssl.SSLWantReadError):
                    break
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
                self.reader.feed(data)
                if len(data) < READ_SIZE:
                    break
        finally:
            sock.settimeout(timeout)
        replies = []
        reply = self.reader.gets()
        while reply is not False:
            replies.append(reply)
            reply = self.reader.gets()
        return replies

    def call(self, *command: Arg) -> Any:
        """Send one command and wait for its reply."""
        self.write(_pack_command(command))
        return self.read()

    def _fill(self) -> None:
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise redis.ConnectionError("Redis closed the connection")
        self.reader.feed(data)

    def close(self) -> None:
        """Close the socket; a greenlet waiting in ``read`` gets an ``OSError``."""
        self.closed = True
        self._conn.disconnect()
