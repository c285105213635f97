"""Events as the line protocol shows them: ``alice: hi``, ``* alice waves``, ``*** bob joined #dev``.

PURE.  The one place that knows what a line user (terminal or browser)
sees for each ``core.events`` value.  ``RENDERER`` is shared by every line
member: the hub renders an event once per renderer per broadcast, so a
room of line users costs one ``render`` whatever its size.

Text in events is already sanitised, so rendering only adds the
protocol's framing.  ``history`` formats a room's remembered lines with
the server-local time they were said, ``[HH:MM] alice: hi``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .events import (
    Event,
    Invited,
    Joined,
    Kicked,
    Kind,
    ModeChanged,
    NickChanged,
    Parted,
    Private,
    Quit,
    Said,
    ServerNotice,
    TopicSet,
)
from .protocol import notice

__all__ = [
    "RENDERER",
    "LineRenderer",
    "history",
    "kicked_you",
    "listing",
    "notice",
    "private_echo",
    "render",
    "topic_line",
]


def private_echo(recipient: str, text: str) -> bytes:
    """A private message as its sender sees it, so it reads as sent."""
    return f"-> *{recipient}* {text}\n".encode()


def _prefix(kind: Kind, nick: str) -> bytes:
    if kind is Kind.SAY:
        return f"{nick}: ".encode()
    if kind is Kind.ME:
        return f"* {nick} ".encode()
    return f"-{nick}- ".encode()


def _said(event: Said) -> bytes:
    if event.kind is Kind.TAG:  # an IRC TAGMSG: nothing a line user could read
        return b""
    prefix = _prefix(event.kind, event.nick)
    lines = event.lines
    if len(lines) == 1:
        return prefix + lines[0] + b"\n"
    return prefix + (b"\n" + prefix).join(lines) + b"\n"


def _private(event: Private) -> bytes:
    if event.kind is Kind.TAG:
        return b""
    if event.kind is Kind.SAY:
        return f"*{event.nick}* {event.text}\n".encode()
    if event.kind is Kind.ME:
        return f"*{event.nick}* * {event.nick} {event.text}\n".encode()
    return f"-{event.nick}- {event.text}\n".encode()


def _why(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def _parted(event: Parted) -> bytes:
    return notice(f"{event.nick} left #{event.room}{_why(event.reason)}")


def _quit(event: Quit) -> bytes:
    return notice(f"{event.nick} left{_why(event.reason)}")


def _topic(event: TopicSet) -> bytes:
    if not event.text:
        return notice(f"{event.nick} cleared the topic")
    return notice(f"{event.nick} set the topic: {event.text}")


#: How a change of one member's status or of the ban list reads; other modes are listed together.
_SENTENCES = {
    "+o": "{by} made {arg} an operator",
    "-o": "{by} removed {arg} as an operator",
    "+v": "{by} gave {arg} a voice",
    "-v": "{by} took {arg}'s voice",
    "+b": "{by} banned {arg}",
    "-b": "{by} lifted the ban on {arg}",
}


def _modes(event: ModeChanged) -> bytes:
    """One line per status or ban change, then one for the room's own modes."""
    out, rest = [], []
    for mode, arg in event.changes:
        sentence = _SENTENCES.get(mode)
        if sentence is not None:
            out.append(notice(sentence.format(by=event.nick, arg=arg)))
        else:  # a key being removed is not shown (IRC shows it as *)
            rest.append(mode if arg is None or mode == "-k" else f"{mode} {arg}")
    if rest:
        out.append(notice(f"{event.nick} set the modes of #{event.room}: {' '.join(rest)}"))
    return b"".join(out)


def _kicked(event: Kicked) -> bytes:
    return notice(f"{event.nick} was kicked by {event.by}{_why(event.reason)}")


def kicked_you(event: Kicked) -> bytes:
    """A kick as the kicked user sees it."""
    return notice(f"you were kicked from #{event.room} by {event.by}{_why(event.reason)}")


def topic_line(text: str, nick: str) -> bytes:
    """A room's topic as shown on joining it and to ``/topic``."""
    return notice(f"topic: {text} (set by {nick})")


def listing(prefix: str, names: list[str], per_line: int = 30) -> list[str]:
    """``prefix a, b, c`` texts, split so that no line lists more than ``per_line`` names."""
    chunks = [names[i : i + per_line] for i in range(0, len(names), per_line)] or [[]]
    return [prefix + ", ".join(chunk) for chunk in chunks]


_RENDER: dict[type, Callable[[Any], bytes]] = {
    Said: _said,
    Private: _private,
    Joined: lambda e: notice(f"{e.nick} joined #{e.room}"),
    Parted: _parted,
    Quit: _quit,
    NickChanged: lambda e: notice(f"{e.old} is now known as {e.new}"),
    TopicSet: _topic,
    ModeChanged: _modes,
    Kicked: _kicked,
    Invited: lambda e: notice(f"{e.by} invites you to #{e.room}"),  # sent to the invitee alone
    ServerNotice: lambda e: notice(e.text),
}


def render(event: Event, when: float = 0.0) -> bytes:
    """``event`` as complete lines of the line protocol (``when`` is not shown live)."""
    return _RENDER[type(event)](event)


class LineRenderer:
    """The renderer of every line member (TCP, TLS, WebSocket): see ``render``."""

    __slots__ = ()

    def render(self, event: Event, when: float) -> bytes:
        if type(event) is Said and event.kind is Kind.SAY:  # the hot path, inlined
            prefix = event.nick.encode() + b": "
            said = event.lines
            if len(said) == 1:
                return prefix + said[0] + b"\n"
            return prefix + (b"\n" + prefix).join(said) + b"\n"
        return _RENDER[type(event)](event)

    def __repr__(self) -> str:
        return "LineRenderer()"


#: Shared by every line member.
RENDERER = LineRenderer()


def history(entries: Iterable[tuple[float, Said]]) -> tuple[bytes, int]:
    """Remembered chat as replayed to a line user: (the lines, how many)."""
    out: list[bytes] = []
    for when, said in entries:
        stamp = time.strftime("[%H:%M] ", time.localtime(when)).encode()
        prefix = stamp + _prefix(said.kind, said.nick)
        out += [prefix + line + b"\n" for line in said.lines]
    return b"".join(out), len(out)
