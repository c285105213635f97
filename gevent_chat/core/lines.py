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
    "notice",
    "private_echo",
    "render",
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
    prefix = _prefix(event.kind, event.nick)
    lines = event.lines
    if len(lines) == 1:
        return prefix + lines[0] + b"\n"
    return prefix + (b"\n" + prefix).join(lines) + b"\n"


def _private(event: Private) -> bytes:
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
        return notice(f"{event.nick} cleared the topic of #{event.room}")
    return notice(f"{event.nick} set the topic of #{event.room}: {event.text}")


def _modes(event: ModeChanged) -> bytes:
    changes = " ".join(mode if arg is None else f"{mode} {arg}" for mode, arg in event.changes)
    return notice(f"{event.nick} set mode {changes} on #{event.room}")


def _kicked(event: Kicked) -> bytes:
    return notice(f"{event.nick} was removed from #{event.room} by {event.by}{_why(event.reason)}")


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
    Invited: lambda e: notice(f"{e.by} invited {e.nick} to #{e.room}"),
    ServerNotice: lambda e: notice(e.text),
}


def render(event: Event, when: float = 0.0) -> bytes:
    """``event`` as complete lines of the line protocol (``when`` is not shown live)."""
    return _RENDER[type(event)](event)


class LineRenderer:
    """The renderer of every line member (TCP, TLS, WebSocket): see ``render``."""

    __slots__ = ()

    def render(self, event: Event, when: float) -> bytes:
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
