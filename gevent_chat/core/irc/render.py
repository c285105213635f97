"""Chat events as IRC lines, for one set of negotiated capabilities.

PURE.  A ``Renderer`` is shared by every IRC client with the same
rendering capabilities (``renderer_for``), so a broadcast renders once per
kind of client, not once per client.  The time of an event is given, never
read: ``server-time`` stamps it on the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from ..events import (
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
    Tags,
    TopicSet,
)
from .message import escape_tag, line

__all__ = ["Renderer", "Renderers", "history_batch", "iso_time", "mode_params"]

#: The capabilities that change how an event is rendered.
RENDERING_CAPS = frozenset({"server-time", "message-tags"})

_COMMAND = {Kind.SAY: "PRIVMSG", Kind.ME: "PRIVMSG", Kind.NOTICE: "NOTICE", Kind.TAG: "TAGMSG"}


def iso_time(when: float) -> str:
    """``when`` (seconds since the epoch) as IRCv3 ``server-time``: UTC with milliseconds."""
    stamp = datetime.fromtimestamp(when, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _text(kind: Kind, text: str) -> str:
    return f"\x01ACTION {text}\x01" if kind is Kind.ME else text


class Renderer:
    """Renders events for clients that negotiated ``caps`` (only ``RENDERING_CAPS`` matter).

    ``masks`` maps a nick as spelled to its ``user@host`` (cloaked); a nick
    missing from it (a user gone, or of another server) gets ``nick@server``.
    """

    __slots__ = ("masks", "message_tags", "server", "server_time")

    def __init__(self, server: str, caps: frozenset[str], masks: Mapping[str, str]) -> None:
        self.server = server
        self.server_time = "server-time" in caps
        #: Client tags are relayed, and TAGMSG sent, only to clients that negotiated message-tags.
        self.message_tags = "message-tags" in caps
        self.masks = masks

    def source(self, nick: str) -> str:
        return f"{nick}!{self.masks.get(nick) or nick + '@' + self.server}"

    def render(self, event: Event, when: float) -> bytes:
        """The lines (CR LF ended) every client of this kind receives for ``event``."""
        tags = f"time={iso_time(when)}" if self.server_time else ""
        return b"".join(self.lines(event, tags))

    def lines(self, event: Event, tags: str = "") -> Iterable[bytes]:
        """``event`` as lines, each with the tag section ``tags``."""
        if isinstance(event, Said):
            src, command, target = self.source(event.nick), _COMMAND[event.kind], f"#{event.room}"
            relayed = event.tags if self.message_tags else ()
            if event.kind is Kind.TAG:  # not sent at all to a client without message-tags
                if self.message_tags:
                    yield line("TAGMSG", target, source=src, tags=_with_tags(tags, relayed))
                return
            me = event.kind is Kind.ME
            if relayed:
                rows = _rows(tags, relayed, len(event.lines))
                for said, row in zip(event.lines, rows, strict=True):
                    text = said.decode("utf-8", "replace")
                    text = f"\x01ACTION {text}\x01" if me else text
                    yield line(command, target, text, source=src, tags=row)
                return
            for said in event.lines:  # the usual case: no tags to relay
                text = said.decode("utf-8", "replace")
                yield line(command, target, f"\x01ACTION {text}\x01" if me else text, source=src, tags=tags)
        elif isinstance(event, Private):
            src, relayed = self.source(event.nick), event.tags if self.message_tags else ()
            if event.kind is Kind.TAG:
                if self.message_tags:
                    yield line("TAGMSG", event.to, source=src, tags=_with_tags(tags, relayed))
                return
            text = _text(event.kind, event.text)
            yield line(_COMMAND[event.kind], event.to, text, source=src, tags=_with_tags(tags, relayed))
        else:
            yield self._membership(event, tags)

    def _membership(self, event: Event, tags: str) -> bytes:
        if isinstance(event, Joined):
            return line("JOIN", f"#{event.room}", source=self.source(event.nick), tags=tags)
        if isinstance(event, Parted):
            why = () if event.reason is None else (event.reason,)
            return line("PART", f"#{event.room}", *why, source=self.source(event.nick), tags=tags)
        if isinstance(event, Quit):
            return line("QUIT", event.reason or "Client Quit", source=self.source(event.nick), tags=tags)
        if isinstance(event, NickChanged):
            return line("NICK", event.new, source=self.source(event.old), tags=tags)
        if isinstance(event, TopicSet):
            return line("TOPIC", f"#{event.room}", event.text, source=self.source(event.nick), tags=tags)
        if isinstance(event, ModeChanged):
            return line(
                "MODE",
                f"#{event.room}",
                *mode_params(event.changes),
                source=self.source(event.nick),
                tags=tags,
            )
        if isinstance(event, Kicked):
            reason = event.reason or event.by
            return line("KICK", f"#{event.room}", event.nick, reason, source=self.source(event.by), tags=tags)
        if isinstance(event, ServerNotice):
            return line("NOTICE", "*", event.text, source=self.server, tags=tags)
        assert isinstance(event, Invited)
        return line("INVITE", event.nick, f"#{event.room}", source=self.source(event.by), tags=tags)


def _rows(tags: str, relayed: Tags, count: int) -> list[str]:
    """The tag sections of ``count`` lines said together: each gets its own msgid, from the batch's."""
    if count == 1 or relayed[0][0] != "msgid":
        return [_with_tags(tags, relayed)] * count
    head = f"{tags};msgid={relayed[0][1]}-" if tags else f"msgid={relayed[0][1]}-"
    rest = _with_tags("", relayed[1:])
    return [f"{head}{i};{rest}" if rest else f"{head}{i}" for i in range(count)]


def _with_tags(tags: str, more: Tags) -> str:
    """The tag section ``tags`` followed by an event's ``more`` tags, escaped."""
    if not more:
        return tags
    extra = ";".join(f"{k}={escape_tag(v)}" if v else k for k, v in more)
    return f"{tags};{extra}" if tags else extra


def mode_params(changes: Iterable[tuple[str, str | None]]) -> list[str]:
    """``(("+o", "bob"), ("+m", None), ("-v", "al"))`` as ``["+om-v", "bob", "al"]``."""
    letters, args, sign = "", [], ""
    for change, arg in changes:
        if change[0] != sign:
            sign = change[0]
            letters += sign
        letters += change[1:]
        if arg is not None:
            args.append(arg)
    return [letters, *args]


class Renderers:
    """The renderers of one server: one per combination of rendering capabilities."""

    def __init__(self, server: str, masks: Mapping[str, str]) -> None:
        self.server = server
        self.masks = masks
        self._made: dict[frozenset[str], Renderer] = {}

    def for_caps(self, caps: Iterable[str]) -> Renderer:
        """The renderer shared by every client that negotiated ``caps``."""
        key = frozenset(caps) & RENDERING_CAPS
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = Renderer(self.server, key, self.masks)
        return made


def history_batch(
    renderer: Renderer, room: str, entries: Iterable[tuple[float, Event]], caps: frozenset[str], batch_id: str
) -> bytes:
    """A room's remembered events for a client joining it, each with its original time.

    With ``batch``, wrapped in a ``chathistory`` batch; with ``server-time``,
    each line carries the time it was said at.
    """
    batched = "batch" in caps
    stamped = "server-time" in caps
    out: list[bytes] = []
    for when, event in entries:
        tags = ";".join(
            t
            for t in (f"batch={batch_id}" if batched else "", f"time={iso_time(when)}" if stamped else "")
            if t
        )
        out.extend(renderer.lines(event, tags))
    if not out:
        return b""
    if batched:
        src = renderer.server
        out.insert(0, line("BATCH", f"+{batch_id}", "chathistory", f"#{room}", source=src))
        out.append(line("BATCH", f"-{batch_id}", source=src))
    return b"".join(out)
