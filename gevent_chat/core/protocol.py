"""The line protocol: framing, decoding, sanitising, reply text.

PURE: this module does no I/O, imports neither ``gevent`` nor ``socket`` and
reads no clock.  Bytes go in, lines and reply bytes come out, so every rule of
the protocol can be tested with plain function calls.

Two things a toy chat server leaves out live here on purpose: ``LineBuffer``
never holds more than the line limit for a line that has no end yet, and the
sanitiser strips every control and escape sequence before a line is relayed.
"""

from __future__ import annotations

import re
from typing import cast

from .names import MAX_NICK_CHARS, is_valid_nick, name_key, validate_nick, validate_room

__all__ = [
    "MAX_NICK_CHARS",
    "NICK_PROMPT",
    "LineBuffer",
    "clean_text",
    "is_blank",
    "is_clean_ascii",
    "is_valid_nick",
    "name_key",
    "notice",
    "sanitise",
    "validate_nick",
    "validate_room",
]

#: Sent on connect and after a refused nickname; no newline, so it reads as a prompt.
NICK_PROMPT = b"Enter your nickname: "

# Escape sequences first (so their parameters go with them), then any single
# control character left over: C0, DEL and C1.
_ESCAPES = re.compile(
    r"""
      \x1b\[ [0-?]* [ -/]* [@-~]?            # CSI ... final byte (ECMA-48)
    | \x9b   [0-?]* [ -/]* [@-~]?            # 8-bit CSI
    | \x1b[\]PX^_] .*? (?:\x07|\x1b\\|\x9c|$) # OSC, DCS, SOS, PM, APC ... BEL or ST
    | [\x90\x98\x9d\x9e\x9f] .*? (?:\x07|\x1b\\|\x9c|$)  # their 8-bit forms
    | \x1b [ -/]* [0-~]?                     # any other escape (e.g. ESC c: reset)
    """,
    re.VERBOSE | re.DOTALL,
)
# Invisible format characters that can deceive a reader, stripped like controls:
# the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069,
# the ones rustc and GitHub flag after "Trojan Source"), the zero-width space,
# word joiner and U+FEFF (no line-breaking use in a terminal, only hiding),
# and the invisible math operators U+2061-U+2064.  Kept: LRM, RLM and ALM
# (U+200E, U+200F, U+061C) have no scope and right-to-left text needs them.
_INVISIBLE = "\u200b\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
# U+2028 and U+2029 separate lines or paragraphs: a space, as a tab is.
_SEPARATORS = re.compile("[\t\u2028\u2029]")
_STRIP = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
# ZWNJ and ZWJ join the characters around them (Persian, Indic scripts, emoji
# sequences): one between two other characters stays, any other goes.
_STRAY_JOINERS = re.compile(r"(?<![^\s\u200c\u200d])[\u200c\u200d]|[\u200c\u200d](?![^\s\u200c\u200d])")
_SUSPECT = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}\u2028\u2029\u200c\u200d]")
# Fast path for the common case: a chunk of printable ASCII needs no decoding
# or sanitising at all.  Anything else (controls, DEL, any non-ASCII byte) goes
# through ``clean_text``.
_SUSPECT_BYTES = re.compile(rb"[\x00-\x1f\x7f\x80-\xff]")


def sanitise(text: str) -> str:
    """Remove escape sequences, control and deceptive invisible characters.

    A tab, U+2028 and U+2029 become a space; a ZWJ or ZWNJ stays only between
    two characters it can join.  Idempotent, and what it returns has no
    character in C0, DEL, C1 or ``_INVISIBLE``.
    """
    if _SUSPECT.search(text) is None:
        return text
    text = _ESCAPES.sub("", _SEPARATORS.sub(" ", text))
    text = _STRIP.sub("", text)
    return _STRAY_JOINERS.sub("", text)


def clean_text(raw: bytes) -> str:
    """Decode one received line (invalid UTF-8 becomes U+FFFD) and sanitise it."""
    return sanitise(raw.decode("utf-8", "replace"))


def is_clean_ascii(data: bytes) -> bool:
    """True if ``data`` is printable ASCII (``\n`` aside): relayable as is.

    A ``\r`` is not exempt: only the one before ``\n`` is a line ending, and
    ``LineBuffer`` has removed it; any other would move the reader's cursor.
    """
    return _SUSPECT_BYTES.search(data.replace(b"\n", b"")) is None


def is_blank(text: str) -> bool:
    """Blank lines are ignored rather than relayed."""
    return not text.strip()


def notice(text: str) -> bytes:
    """A server line: ``*** text``."""
    return f"*** {text}\n".encode()


def slow_down(waiting: int, rate: float) -> bytes:
    """What a sender is told when flood control starts holding its lines back."""
    lines = "line" if waiting == 1 else "lines"
    return notice(f"slow down: {waiting} {lines} waiting, sending {rate:g} a second")


class LineBuffer:
    """Split a byte stream into lines of at most ``limit`` bytes.

    ``feed(data)`` returns the complete lines in ``data`` (line ending removed,
    ``\\n`` or ``\\r\\n``) in order; a line longer than ``limit`` appears as
    ``None`` once, as soon as it is known to be too long, and the rest of it
    is skipped up to its newline.  Whatever the chunking of the stream, the
    result is the same, and the buffer never holds more than ``limit + 1``
    bytes between calls.  ``close()`` returns the last line if the stream
    ended without a newline.
    """

    __slots__ = ("_buf", "_skipping", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = b""
        self._skipping = False  # inside an overlong line, already reported

    def feed(self, data: bytes) -> list[bytes | None]:
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return []
            self._skipping = False
            data = data[end + 1 :]
        if self._buf:
            data = self._buf + data
        split = data.split(b"\n")
        rest = split.pop()
        limit = self.limit
        if b"\r" in data:
            split = [ln[:-1] if ln.endswith(b"\r") else ln for ln in split]
        lines: list[bytes | None]
        if len(data) > limit:  # only then can a line be too long
            lines = [None if len(ln) > limit else ln for ln in split]
        else:
            lines = cast("list[bytes | None]", split)
        # A partial line may end in the "\r" of a "\r\n" still to come.
        if len(rest) > limit + 1 or (len(rest) == limit + 1 and not rest.endswith(b"\r")):
            lines.append(None)
            self._skipping = True
            rest = b""
        self._buf = rest
        return lines

    def close(self) -> bytes | None:
        """The unterminated last line, if any (the stream has ended)."""
        rest, self._buf = self._buf, b""
        if self._skipping or not rest:
            return None
        return rest[:-1] if rest.endswith(b"\r") else rest
