"""What a connection may do before it has a nickname.

PURE: bytes in, a ``Verdict`` out; the shell sends the reply, waits the delay
and closes when told.  Three rules guard registration, after ergo and ngircd:

1. A first line that looks like an HTTP request is answered in plain words and
   closed (a browser or a scanner has found the port).
2. With a server password, the first line answers ``Password: ``; a wrong one
   closes the connection after a delay, so guessing costs time.  The compare
   runs in constant time, and the password is never part of any reply.
3. At most ``max_lines`` lines before registering, then the connection is cut,
   so nobody idles in the nickname prompt feeding the server junk.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from .protocol import NICK_PROMPT, notice

__all__ = ["PASSWORD_PROMPT", "Gate", "Verdict", "is_http_request"]

#: Sent on connect when the server has a password; no newline, like the nick prompt.
PASSWORD_PROMPT = b"Password: "

# The request line of RFC 9110's methods (and WebDAV's, which scanners send too).
_HTTP_REQUEST = re.compile(
    rb"(?:GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|PROPFIND) \S+ HTTP/\d(?:\.\d)?\s*"
)

#: Reasons a gate closes a connection; also labels of the refused-connections metric.
HTTP = "http"
WRONG_PASSWORD = "wrong_password"
TOO_MANY_LINES = "unregistered_lines"


def is_http_request(line: bytes) -> bool:
    """True if ``line`` is an HTTP request line such as ``GET / HTTP/1.1``."""
    return _HTTP_REQUEST.fullmatch(line) is not None


@dataclass(frozen=True)
class Verdict:
    """What to do with one line received before registration."""

    #: Bytes to send (may be empty).
    reply: bytes = b""
    #: Seconds to wait before sending ``reply``.
    delay: float = 0.0
    #: Close after ``reply``, for this reason (a metric label); None keeps going.
    close: str | None = None
    #: The line is a nickname attempt: register it.
    is_nick: bool = False


_NICK = Verdict(is_nick=True)


class Gate:
    """The pre-registration rules of one connection."""

    __slots__ = ("_password", "authenticated", "delay", "lines", "max_lines")

    def __init__(self, password: str | None = None, max_lines: int = 50, delay: float = 1.0) -> None:
        self._password = None if password is None else password.encode()
        self.authenticated = password is None
        self.max_lines = max_lines
        self.delay = delay
        self.lines = 0

    def __repr__(self) -> str:  # never show the password
        return f"Gate(lines={self.lines}, authenticated={self.authenticated})"

    def opening(self) -> bytes:
        """The prompt to send on connect, and again for what is still expected."""
        return NICK_PROMPT if self.authenticated else PASSWORD_PROMPT

    def overlong(self) -> Verdict | None:
        """Count a line that was over the line limit; a closing verdict past the cap.

        It is no answer to the prompt, but it is a line: it counts like any other.
        """
        self.lines += 1
        if self.max_lines and self.lines > self.max_lines:
            return Verdict(notice("too many lines before registering, goodbye"), close=TOO_MANY_LINES)
        return None

    def check(self, line: bytes) -> Verdict:
        """Judge one received line (line ending already removed)."""
        self.lines += 1
        if self.lines == 1 and is_http_request(line):
            return Verdict(notice("this is a chat server, not an HTTP server"), close=HTTP)
        if self.max_lines and self.lines > self.max_lines:
            return Verdict(notice("too many lines before registering, goodbye"), close=TOO_MANY_LINES)
        if self.authenticated:
            return _NICK
        assert self._password is not None
        if hmac.compare_digest(line, self._password):
            self.authenticated = True
            return Verdict(NICK_PROMPT)
        return Verdict(notice("wrong password"), delay=self.delay, close=WRONG_PASSWORD)
