"""IRC lines in and out: guarded parsing with irctokens, and formatting.

PURE.  irctokens fails on lines that are empty, hold only tags or only a
source, and unescapes tags in quadratic time; ``parse`` bounds and screens
a line before handing it over.  ``line`` builds outgoing lines without the
generality of ``irctokens.format`` (the hot path renders chat lines with it).
"""

from __future__ import annotations

from irctokens.line import Line, tokenise

from ..errors import ClientError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TAG_BYTES",
    "InputTooLong",
    "escape_tag",
    "line",
    "parse",
]

#: RFC 1459: 512 bytes with the CR LF; what follows the tags, without it.
MAX_BODY_BYTES = 510
#: IRCv3 message-tags: a client's tag data (without ``@`` and the space) may be 4094 bytes.
MAX_TAG_BYTES = 4094
#: What ``LineBuffer`` must let through for ``parse`` to judge (``@``, tags, space, body).
MAX_LINE_BYTES = MAX_TAG_BYTES + 2 + MAX_BODY_BYTES

_TAG_ESCAPES = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


class InputTooLong(ClientError):
    """A line past the limits (417 ERR_INPUTTOOLONG)."""


def parse(raw: bytes) -> Line | None:
    """The message in one received line (no line ending), or None for nothing to act on.

    None: an empty line, one of spaces, tags only, or a source with no
    command (RFC 1459 servers ignore empty lines).  Invalid UTF-8 becomes
    U+FFFD, and NUL ends the line, as irctokens does.  Raises
    ``InputTooLong`` if the tags or the body are over their limits: the
    quadratic tag unescaping never sees a long tag section.
    """
    body = raw
    if raw[:1] == b"@":
        tags, _, body = raw.partition(b" ")
        if len(tags) - 1 > MAX_TAG_BYTES:
            raise InputTooLong("input line too long")
        body = body.lstrip(b" ")
    if len(body) > MAX_BODY_BYTES:
        raise InputTooLong("input line too long")
    if body[:1] == b":":
        body = body.partition(b" ")[2].lstrip(b" ")
    if not body.strip(b" ") or body[:1] == b"\x00":
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return tokenise(text)
    except (IndexError, ValueError):  # a shape the screens above missed: nothing to act on
        return None


def escape_tag(value: str) -> str:
    """A tag value escaped for the wire (IRCv3 message-tags)."""
    return value.translate(_TAG_ESCAPES)


def line(command: str, *params: str, source: str | None = None, tags: str = "") -> bytes:
    """One formatted line with CR LF; the last parameter becomes trailing when it must.

    ``tags`` is the formatted tag section without ``@`` (see ``escape_tag``).
    A middle parameter that is empty, holds a space or starts with ``:``
    (a client's bad mode argument, echoed) would break the line: it is sent
    as ``*``.
    """
    parts = [f"@{tags}"] if tags else []
    if source is not None:
        parts.append(f":{source}")
    parts.append(command)
    if params:
        parts.extend(p if p and " " not in p and p[0] != ":" else "*" for p in params[:-1])
        last = params[-1]
        parts.append(f":{last}" if not last or " " in last or last[0] == ":" else last)
    return (" ".join(parts) + "\r\n").encode()
