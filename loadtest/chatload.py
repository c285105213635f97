"""The load test's rules: its chat lines, what a receiver concludes, its steps.

PURE: no sockets, no gevent, no locust, no clock.  Bytes and times go in,
counts come out, so the rules for calling a line lost are tested with plain
calls (``tests/test_chatload.py``) and any load generator can share them.

Every line a load-test user says reads ``seq=17 t=1732540000.123456 xxxx``:
its sequence number for that sender (from 1), its send time (``time.time()``,
one clock for every process on a machine) and padding up to the wanted size.
The server prefixes the sender's nick, so a receiver sees
``u4242_1a2b_7: seq=17 t=...`` and knows who sent what, in which order, when.

A receiver only knows about the lines it was there for: it starts tracking a
sender at the first line it sees from that sender (lines said before the
receiver joined are not lost), and forgets a sender that leaves.  Any line
with a sequence number above the next expected one means the lines between
were lost; a line with a number at or below the last one seen arrived out of
order (or twice).  A late line is therefore counted twice, first as lost
(when the gap shows) and then as out of order: a correct server does neither.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PORT",
    "MAX_NICK_CHARS",
    "PROMPT",
    "Receiver",
    "Report",
    "chat_text",
    "make_nick",
    "parse_address",
    "parse_chat",
    "step_levels",
]

#: What the server sends on connect (no newline), as ``gevent_chat.protocol.NICK_PROMPT``.
PROMPT = b"Enter your nickname: "
#: The server's nick limit, as ``gevent_chat.protocol.MAX_NICK_CHARS``.
MAX_NICK_CHARS = 32
#: The server's default port.
DEFAULT_PORT = 8000

_NOTICE = b"*** "
_ERROR = b"*** error"
_DISCONNECTED = b"*** disconnected: "
_SHUTTING_DOWN = b"*** server shutting down"
_SEQ = b": seq="
_TIME = b" t="


def chat_text(seq: int, sent_at: float, size: int) -> bytes:
    """The text of line ``seq`` sent at ``sent_at``, padded with ``x`` to ``size`` bytes.

    The header (``seq=N t=T``) is never cut: if it is longer than ``size``,
    the text is just the header.
    """
    head = b"seq=%d t=%.6f" % (seq, sent_at)
    pad = size - len(head)
    if pad <= 0:
        return head
    return head + b" " + b"x" * (pad - 1)


def parse_chat(line: bytes) -> tuple[bytes, int, float] | None:
    """``(sender, seq, sent_at)`` of a relayed load-test line, or None for any other line."""
    if line.startswith(_NOTICE):
        return None
    i = line.find(_SEQ)
    if i <= 0:
        return None
    j = line.find(_TIME, i)
    if j < 0:
        return None
    k = line.find(b" ", j + 3)
    try:
        return line[:i], int(line[i + 6 : j]), float(line[j + 3 : k if k > 0 else None])
    except ValueError:
        return None


def make_nick(tag: str, n: int) -> str:
    """Nick number ``n`` of the generator process tagged ``tag``: ``u<tag>_<n>``."""
    nick = f"u{tag}_{n}"
    if len(nick) > MAX_NICK_CHARS:
        raise ValueError(f"nick {nick!r} is longer than {MAX_NICK_CHARS} characters")
    return nick


def parse_address(host: str) -> tuple[str, int]:
    """``HOST:PORT``, ``tcp://HOST:PORT``, ``[V6]:PORT`` or ``HOST`` -> (host, port).

    Raises ``ValueError`` for anything else (an ``http://`` URL, a bad port).
    """
    text = host.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.lower() != "tcp":
            raise ValueError(f"--host must be HOST:PORT or tcp://HOST:PORT, not {host!r}")
        text = text.rstrip("/")
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad IPv6 address in --host {host!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        name, _, port_text = text.partition(":")
    elif ":" in text:
        name, port_text = text, ""  # a bare IPv6 address
    else:
        name, port_text = text, ""
    if not name:
        raise ValueError(f"no host name in --host {host!r}")
    if not port_text:
        return name, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in --host {host!r}")
    return name, int(port_text)


class Report:
    """What one chunk of received bytes showed."""

    __slots__ = ("closing", "delivered", "errors", "lines", "lost", "out_of_order")

    def __init__(self) -> None:
        #: (latency in ms, line length in bytes) of each sampled load-test line.
        self.delivered: list[tuple[float, int]] = []
        #: Load-test lines received, sampled or not.
        self.lines = 0
        #: Lines that never arrived: gaps in a sender's sequence.
        self.lost = 0
        #: Lines that arrived after a later line from the same sender (or twice).
        self.out_of_order = 0
        #: ``*** error...`` lines, as text.
        self.errors: list[str] = []
        #: Why the server says it is about to close this connection, if it did.
        self.closing: str | None = None


class Receiver:
    """Frame, check and time everything one user receives after its welcome.

    ``feed(data, now)`` takes the bytes of one ``recv`` and the time they
    arrived (``time.time()``) and returns a ``Report``.  With ``sample=N``,
    only one load-test line in N goes into ``Report.delivered``; every line is
    checked for order.  Memory stays bounded: one partial line, and one
    integer per sender currently in the room.
    """

    __slots__ = ("_buf", "_countdown", "_last", "_sample")

    def __init__(self, sample: int = 1) -> None:
        if sample < 1:
            raise ValueError("sample must be at least 1")
        self._sample = sample
        self._countdown = sample
        self._buf = b""
        self._last: dict[bytes, int] = {}  # sender -> last sequence number seen

    def feed(self, data: bytes, now: float) -> Report:
        report = Report()
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        self._buf = lines.pop()
        last = self._last
        for line in lines:
            parsed = parse_chat(line)
            if parsed is None:
                if line.startswith(_NOTICE):
                    self._notice(line, report)
                continue
            sender, seq, sent_at = parsed
            report.lines += 1
            prev = last.get(sender)
            if prev is None or seq > prev:
                if prev is not None and seq > prev + 1:
                    report.lost += seq - prev - 1
                last[sender] = seq
            else:
                report.out_of_order += 1
            self._countdown -= 1
            if self._countdown == 0:
                self._countdown = self._sample
                latency = (now - sent_at) * 1000.0
                report.delivered.append((latency if latency > 0.0 else 0.0, len(line) + 1))
        return report

    def _notice(self, line: bytes, report: Report) -> None:
        if line.startswith(_ERROR):
            report.errors.append(line.decode("utf-8", "replace"))
        elif line.startswith(_DISCONNECTED):
            report.closing = line[len(_DISCONNECTED) :].decode("utf-8", "replace")
        elif line.startswith(_SHUTTING_DOWN):
            report.closing = "server shutting down"
        else:
            # "*** NICK left" or "*** NICK left (reason)": stop tracking NICK,
            # so the table holds only senders still in the room.
            nick, _, rest = line[len(_NOTICE) :].partition(b" ")
            if rest == b"left" or rest.startswith(b"left ("):
                self._last.pop(nick, None)


def step_levels(step: int, peak: int) -> list[int]:
    """User counts of a stepped run: up by ``step`` to ``peak``, then down again.

    ``step_levels(100, 250) == [100, 200, 250, 150, 50]``: each level is held
    for the same time; the run ends after the last.
    """
    if step < 1 or peak < 1:
        raise ValueError("step and peak must be at least 1")
    up = [*range(step, peak, step), peak]
    down = list(range(peak - step, 0, -step))
    return up + down
