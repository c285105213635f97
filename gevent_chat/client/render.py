"""How the terminal client reads and shows what a server sends.

PURE: no I/O, no ``gevent``, no clock.  ``Incoming`` frames the received byte
stream into lines and the (newline-less) nickname prompt; ``classify`` tells
which kind of line a line is; ``render`` neutralises control and escape bytes
(a server may not strip them) and, when asked, adds our own colours.

Colours follow the common conventions of chat clients: every nick gets a
colour of its own, picked by a stable hash (CRC-32, never Python's salted
``hash()``) so alice is the same colour in every run and every client;
``***`` notices are dimmed; private messages stand out in bold.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import zlib

from ..core.protocol import sanitise

__all__ = [
    "PALETTE",
    "Incoming",
    "Kind",
    "Line",
    "classify",
    "is_password_prompt",
    "is_wrong_password",
    "nick_colour",
    "refusal_reason",
    "renamed_to",
    "render",
    "welcome_nick",
]

#: Foreground SGR codes readable on both dark and light backgrounds (no black,
#: white or grey, which vanish on one of them).
PALETTE = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)

RESET = "\x1b[0m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"

#: A server line longer than this is shown in pieces rather than buffered on.
MAX_LINE_BYTES = 65536

_NICK = r"\w[\w.\-]*"
_HISTORY = re.compile(r"\[\d\d:\d\d\] ")
_PATTERNS = (
    ("notice", re.compile(r"\*\*\* (?P<text>.*)", re.DOTALL)),
    ("private_out", re.compile(rf"-> \*(?P<nick>{_NICK})\* (?P<text>.*)", re.DOTALL)),
    ("private", re.compile(rf"\*(?P<nick>{_NICK})\* (?P<text>.*)", re.DOTALL)),
    ("action", re.compile(rf"\* (?P<nick>{_NICK}) (?P<text>.*)", re.DOTALL)),
    ("chat", re.compile(rf"(?P<nick>{_NICK}): (?P<text>.*)", re.DOTALL)),
)
_WELCOME = re.compile(r"\*\*\* Welcome, (?P<nick>.+?)!")
_RENAMED = re.compile(r"\*\*\* you are now known as (?P<nick>\S+)$")
_PROMPT = re.compile(r"nickname: ?$", re.IGNORECASE)
# The whole pending tail, so no chat line split by TCP can look like it.
_PASSWORD_PROMPT = re.compile(r"password: ?", re.IGNORECASE)


class Kind(enum.Enum):
    NOTICE = "notice"  # *** text
    CHAT = "chat"  # nick: text
    PRIVATE = "private"  # *nick* text (to you)
    PRIVATE_OUT = "private_out"  # -> *nick* text (your own, echoed)
    ACTION = "action"  # * nick text
    PLAIN = "plain"  # anything else


@dataclasses.dataclass(frozen=True)
class Line:
    """One received line, split into the parts that are shown differently."""

    kind: Kind
    text: str
    nick: str = ""
    stamp: str = ""  # "[HH:MM] " on a history line, else ""


def classify(text: str) -> Line:
    """Which kind of line ``text`` (already sanitised) is."""
    stamp = ""
    m = _HISTORY.match(text)
    if m:
        stamp, text = m.group(), text[m.end() :]
    for kind, pattern in _PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            return Line(Kind(kind), m["text"], m.groupdict().get("nick") or "", stamp)
    return Line(Kind.PLAIN, text, "", stamp)


def nick_colour(nick: str) -> int:
    """The SGR foreground code of ``nick``: the same for every run and case."""
    # str.casefold, not the uniqueness key: the browser page computes the same colour.
    return PALETTE[zlib.crc32(nick.casefold().encode("utf-8", "replace")) % len(PALETTE)]


def _paint(nick: str) -> str:
    return f"\x1b[{nick_colour(nick)}m{nick}{RESET}"


def render(raw: str, colour: bool) -> str:
    """The text to print for one received line; no control byte survives.

    With ``colour`` off the result is the sanitised line itself.
    """
    text = sanitise(raw)
    if not colour:
        return text
    line = classify(text)
    stamp = f"{DIM}{line.stamp}{RESET}" if line.stamp else ""
    kind, nick, body = line.kind, line.nick, line.text
    if kind is Kind.NOTICE:
        shown = f"{DIM}*** {body}{RESET}"
    elif kind is Kind.CHAT:
        shown = f"{_paint(nick)}: {body}"
    elif kind is Kind.ACTION:
        shown = f"* {_paint(nick)} {body}"
    elif kind is Kind.PRIVATE:
        shown = f"{BOLD}*{_paint(nick)}{BOLD}* {body}{RESET}"
    elif kind is Kind.PRIVATE_OUT:
        shown = f"{BOLD}-> *{_paint(nick)}{BOLD}* {body}{RESET}"
    else:
        shown = body
    return stamp + shown


def welcome_nick(text: str) -> str | None:
    """The nick a ``*** Welcome, NICK!`` line confirms, else None."""
    m = _WELCOME.match(text)
    return m["nick"] if m else None


def renamed_to(text: str) -> str | None:
    """The new nick a ``*** you are now known as NEW`` line confirms, else None."""
    m = _RENAMED.match(text)
    return m["nick"] if m else None


def is_password_prompt(text: str) -> bool:
    """True if a prompt ``Incoming`` framed asks for the server password."""
    return _PASSWORD_PROMPT.fullmatch(text) is not None


def is_wrong_password(text: str) -> bool:
    """True for the server's answer to a wrong password (it closes next)."""
    return text.rstrip() == "*** wrong password"


def refusal_reason(text: str) -> str | None:
    """Why a nickname was refused (``invalid`` or ``taken``), else None.

    Only meaningful while registering: the answer to a nickname is either the
    welcome line or a ``*** `` line with one of those words.
    """
    if not text.startswith("*** "):
        return None
    lowered = text.lower()
    if "taken" in lowered or "invalid" in lowered:
        return text[4:]
    return None


class Incoming:
    """Frame a server's byte stream into lines and prompts.

    ``feed(data)`` returns ``(is_prompt, text)`` pairs in order; the text is
    decoded (invalid UTF-8 becomes U+FFFD) and sanitised.  A prompt is the
    newline-less tail the server sends when it wants a nickname or the server
    password: the pending partial line counts as one only if it ends in
    ``nickname:`` and is not a ``***`` notice, or is exactly ``Password:``, so
    a chat line split by TCP is never mistaken for one.  A
    line longer than ``limit`` bytes is shown in pieces instead of growing the
    buffer.  ``close()`` returns the unterminated tail at end of stream.
    """

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[bool, str]]:
        parts = (self._buf + data).split(b"\n")
        rest = parts.pop()
        out = [(False, _decode(p)) for p in parts]
        while len(rest) > self.limit:
            out.append((False, _decode(rest[: self.limit])))
            rest = rest[self.limit :]
        tail = _decode(rest)
        if rest and ((_PROMPT.search(tail) and not tail.startswith("*")) or is_password_prompt(tail)):
            out.append((True, tail))
            rest = b""
        self._buf = rest
        return out

    def close(self) -> str | None:
        rest, self._buf = self._buf, b""
        return _decode(rest) if rest else None


def _decode(raw: bytes) -> str:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return sanitise(raw.decode("utf-8", "replace"))
