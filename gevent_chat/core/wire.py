"""What chat servers of one cluster say to each other through Redis: encode, validate.

PURE: bytes in, values out; no I/O, no clock, no Redis.  One relayed batch is
an ``Entry``: who published it (node id and that node's sequence number),
when it was said, how many lines and whether they go into history, and the
payload itself.  It is stored in a room's Stream as two fields, ``h`` (the
header line below) and ``d`` (the payload), under the ID ``<offset>-0``, and
published on the room's channel as::

    gc1 <epoch> <offset> <node> <seq> <when_ms> <lines> <remember>\\n<payload>

The publish script builds that message from the header Python made, so
Python and Lua share one format.  Everything read back from Redis is
validated here: a message from a foreign or broken publisher raises
``WireError`` (the caller drops and counts it), and a payload must be
complete lines that the sanitiser would leave unchanged, so nothing on the
channel can smuggle escape sequences past the server that relayed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ChatError
from .protocol import is_clean_ascii, is_valid_nick, name_key, sanitise

__all__ = [
    "MAGIC",
    "MAX_PAYLOAD_BYTES",
    "Entry",
    "Message",
    "WireError",
    "decode_control",
    "decode_entry",
    "decode_message",
    "decode_private",
    "encode_control",
    "encode_header",
    "encode_message",
    "encode_private",
    "is_valid_token",
    "offset_of",
]

#: First word of every published message: format version 1.
MAGIC = b"gc1"
#: First word of a private message, sent on the channel of the recipient's node::
#:
#:     gcp1 <folded nick>\n<one line>
PRIVATE_MAGIC = b"gcp1"
#: First word of a word from one node to another, on the recipient's channel::
#:
#:     gcc1 <what> <folded nick or ->\n<text, maybe empty>
#:
#: ``kill`` (disconnect that user here, ``text`` the reason), ``gbans`` (the
#: server bans changed: read them again).
CONTROL_MAGIC = b"gcc1"
#: The words ``CONTROL_MAGIC`` messages may say.
CONTROLS = ("kill", "gbans")

#: Largest payload accepted from Redis: a batch is at most half an outbox of
#: lines of at most a few KiB each, far below this.
MAX_PAYLOAD_BYTES = 1 << 20

_TOKEN = re.compile(rb"[A-Za-z0-9_-]{1,64}")
_NUMBER = re.compile(rb"[0-9]{1,19}")


class WireError(ChatError):
    """Bytes from Redis that are not a valid message or entry."""


def is_valid_token(text: str) -> bool:
    """True if ``text`` may be a node id or an epoch (ASCII word characters and ``-``)."""
    return _TOKEN.fullmatch(text.encode("utf-8", "replace")) is not None


@dataclass(frozen=True, slots=True)
class Entry:
    """One published batch of complete lines."""

    node: str
    seq: int
    when_ms: int
    lines: int
    remember: bool
    payload: bytes

    @property
    def when(self) -> float:
        """Seconds since the epoch the lines were said (on the publishing node's clock)."""
        return self.when_ms / 1000


@dataclass(frozen=True, slots=True)
class Message:
    """An entry as published live: with the room's epoch and the entry's offset."""

    epoch: str
    offset: int
    entry: Entry


def encode_header(node: str, seq: int, when_ms: int, lines: int, remember: bool) -> bytes:
    """The ``h`` field of an entry, also the tail of the published message's first line."""
    return f"{node} {seq} {when_ms} {lines} {int(remember)}".encode()


def encode_message(epoch: str, offset: int, entry: Entry) -> bytes:
    """What the publish script sends; used by tests and by nothing else in Python."""
    header = encode_header(entry.node, entry.seq, entry.when_ms, entry.lines, entry.remember)
    return b"%s %s %d %s\n%s" % (MAGIC, epoch.encode(), offset, header, entry.payload)


def _number(raw: bytes, what: str, minimum: int) -> int:
    if _NUMBER.fullmatch(raw) is None or int(raw) < minimum:
        raise WireError(f"bad {what}: {raw[:40]!r}")
    return int(raw)


def _token(raw: bytes, what: str) -> str:
    if _TOKEN.fullmatch(raw) is None:
        raise WireError(f"bad {what}: {raw[:40]!r}")
    return raw.decode("ascii")


def _check_payload(payload: bytes, lines: int) -> None:
    if not payload or len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes")
    if not payload.endswith(b"\n") or payload.count(b"\n") != lines:
        raise WireError("payload is not the announced number of complete lines")
    if is_clean_ascii(payload):
        return
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("payload is not UTF-8") from exc
    if any(sanitise(line) != line for line in text.split("\n")):
        raise WireError("payload has control or escape characters")


def _entry(header: bytes, payload: bytes) -> Entry:
    fields = header.split(b" ")
    if len(fields) != 5:
        raise WireError(f"header has {len(fields)} fields, not 5")
    node = _token(fields[0], "node")
    seq = _number(fields[1], "sequence number", 1)
    when_ms = _number(fields[2], "time", 0)
    lines = _number(fields[3], "line count", 1)
    if fields[4] not in (b"0", b"1"):
        raise WireError(f"bad remember flag: {fields[4][:40]!r}")
    _check_payload(payload, lines)
    return Entry(node, seq, when_ms, lines, fields[4] == b"1", payload)


def decode_message(data: bytes) -> Message:
    """Parse and validate one published message; raises ``WireError``."""
    end = data.find(b"\n", 0, 256)
    if end < 0:
        raise WireError("no header line")
    first = data[:end].split(b" ", 3)
    if len(first) != 4 or first[0] != MAGIC:
        raise WireError(f"not a {MAGIC.decode()} message: {data[:40]!r}")
    epoch = _token(first[1], "epoch")
    offset = _number(first[2], "offset", 1)
    return Message(epoch, offset, _entry(first[3], data[end + 1 :]))


def offset_of(stream_id: bytes | str) -> int:
    """The offset a Stream entry ID ``<offset>-0`` stands for; raises ``WireError``."""
    raw = stream_id.encode() if isinstance(stream_id, str) else stream_id
    ms, sep, rest = raw.partition(b"-")
    if not sep or rest != b"0":
        raise WireError(f"bad stream id: {raw[:40]!r}")
    return _number(ms, "stream id", 1)


def decode_entry(fields: dict[bytes, bytes]) -> Entry:
    """Validate the fields of one Stream entry; raises ``WireError``."""
    header, payload = fields.get(b"h"), fields.get(b"d")
    if header is None or payload is None:
        raise WireError("entry without h and d fields")
    return _entry(header, payload)


def encode_private(nick: str, line: bytes) -> bytes:
    """A private message for ``nick``: one complete line."""
    return b"%s %s\n%s" % (PRIVATE_MAGIC, name_key(nick).encode(), line)


def decode_private(data: bytes) -> tuple[str, bytes]:
    """The (folded nick, line) of a private message; raises ``WireError``."""
    end = data.find(b"\n", 0, 256)
    if end < 0:
        raise WireError("no header line")
    magic, _, raw_nick = data[:end].partition(b" ")
    if magic != PRIVATE_MAGIC:
        raise WireError(f"not a {PRIVATE_MAGIC.decode()} message: {data[:40]!r}")
    try:
        nick = raw_nick.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("nick is not UTF-8") from exc
    if not is_valid_nick(nick):
        raise WireError(f"bad nick: {raw_nick[:40]!r}")
    line = data[end + 1 :]
    _check_payload(line, 1)
    return nick, line


def encode_control(what: str, nick: str | None = None, text: str = "") -> bytes:
    """A word for another node (``CONTROL_MAGIC``): ``what`` of ``CONTROLS``, about ``nick``."""
    about = name_key(nick) if nick is not None else "-"
    return b"%s %s %s\n%s" % (CONTROL_MAGIC, what.encode(), about.encode(), text.encode())


def decode_control(data: bytes) -> tuple[str, str | None, str]:
    """The (what, folded nick or None, text) of a control message; raises ``WireError``."""
    head, _, body = data.partition(b"\n")
    words = head.split(b" ")
    if len(words) != 3 or words[0] != CONTROL_MAGIC:
        raise WireError(f"not a {CONTROL_MAGIC.decode()} message: {data[:40]!r}")
    what = words[1].decode("ascii", "replace")
    if what not in CONTROLS:
        raise WireError(f"unknown control {words[1][:20]!r}")
    try:
        about = words[2].decode("utf-8")
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("control message is not UTF-8") from exc
    if about != "-" and not is_valid_nick(about):
        raise WireError(f"bad nick: {words[2][:40]!r}")
    if len(text) > 1000 or "\n" in text or "\r" in text:
        raise WireError("control text too long or not one line")
    return what, (None if about == "-" else about), text
