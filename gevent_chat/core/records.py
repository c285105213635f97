"""A room's rules and the server bans as the flat records a cluster keeps them in.

PURE.  With several servers the rules of a room (``core.roomstate``) and the
server-wide bans (``core.serverbans``) are also kept outside any one server,
so a server that gets its first user of a room, or starts, or comes back
from an outage, learns what holds.  A record is a map of field -> text (a
Redis hash): one field per thing that changes alone, so two servers changing
different things at once never overwrite each other.  This module says what
a decision changes in a record (``changes``), what a whole state is as one
(``fields``) and reads one back (``load``, which skips what it cannot read:
another program's data never stops a room).  Storing is the shell's.

Fields of a room's record::

    rules             "1": the record exists (a room with default rules has one too)
    topic             JSON [text, nick, time]
    mode:<letter>     "+" or "-" for the flags of ``modes.FLAGS`` (absent: the default)
    key, limit        the +k key, the +l limit
    op:<key>, vo:<key>        "1": an operator, a voiced member (by ``name_key``)
    ban:<mask>        JSON [nick, time]
    inv:<key>         "1": a pending invitation

A server ban is one field of the server bans' record: ``<mask>`` -> JSON
[nick, reason or null, time].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .errors import ClientError
from .events import Event, Invited, Joined, Kicked, ModeChanged, NickChanged, TopicSet
from .masks import parse_mask
from .modes import DEFAULT_FLAGS, FLAGS, MAX_KEY_CHARS, MAX_LIMIT
from .names import is_valid_nick, name_key
from .protocol import sanitise
from .roomstate import MAX_BANS, MAX_INVITES, MAX_TOPIC_CHARS, Ban, RoomState, Topic
from .serverbans import MAX_REASON_CHARS, MAX_SERVER_BANS, ServerBan, ServerBans

__all__ = [
    "MARK",
    "Changes",
    "changes",
    "decode_server_ban",
    "encode_server_ban",
    "fields",
    "load",
    "load_server_bans",
]

#: The field every room record has.
MARK = "rules"

#: Field -> new text, or None to remove the field.
Changes = dict[str, str | None]


def _topic(topic: Topic | None) -> str | None:
    return None if topic is None else json.dumps([topic.text, topic.nick, topic.time])


def _ban(ban: Ban) -> str:
    return json.dumps([ban.nick, ban.time])


def changes(event: Event, state: RoomState) -> Changes:
    """What ``event``, decided here, changes in its room's record; ``state`` is the room's after it.

    Only what the event changed: another server may change the rest at the
    same moment.  Joining and leaving a room (an invitation used, operator
    status and voice gone) are the store's to record with the member's presence.
    """
    found: Changes = {}
    if isinstance(event, TopicSet):
        found["topic"] = _topic(state.topic)
    elif isinstance(event, ModeChanged):
        for change, arg in event.changes:
            sign, letter = change[0], change[1:]
            adding = sign == "+"
            if letter in ("o", "v") and arg is not None:
                found[f"{'op' if letter == 'o' else 'vo'}:{name_key(arg)}"] = "1" if adding else None
            elif letter == "k":
                found["key"] = state.key
            elif letter == "l":
                found["limit"] = None if state.limit is None else str(state.limit)
            elif letter == "b" and arg is not None:
                ban = next((b for b in state.bans if b.mask.text == arg), None) if adding else None
                found[f"ban:{arg}"] = None if ban is None else _ban(ban)
            elif letter in FLAGS:
                found[f"mode:{letter}"] = sign
    elif isinstance(event, Kicked):
        found[f"op:{name_key(event.nick)}"] = None
        found[f"vo:{name_key(event.nick)}"] = None
    elif isinstance(event, Invited):
        found[f"inv:{name_key(event.nick)}"] = "1"
    elif isinstance(event, Joined):  # (the invitation it used goes with the member's presence)
        if state.is_operator(event.nick):  # its creator
            found[f"op:{name_key(event.nick)}"] = "1"
    elif isinstance(event, NickChanged):  # the status follows the user; the old nick's left with it
        key = name_key(event.new)
        if key in state.operators:
            found[f"op:{key}"] = "1"
        if key in state.voiced:
            found[f"vo:{key}"] = "1"
    if found:
        found[MARK] = "1"
    return found


def fields(state: RoomState) -> dict[str, str]:
    """The whole of ``state`` as a record (to write back what a store lost)."""
    record = {MARK: "1"}
    topic = _topic(state.topic)
    if topic is not None:
        record["topic"] = topic
    for letter in FLAGS:
        if (letter in state.flags) != (letter in DEFAULT_FLAGS):
            record[f"mode:{letter}"] = "+" if letter in state.flags else "-"
    if state.key is not None:
        record["key"] = state.key
    if state.limit is not None:
        record["limit"] = str(state.limit)
    record.update({f"op:{k}": "1" for k in state.operators})
    record.update({f"vo:{k}": "1" for k in state.voiced})
    record.update({f"ban:{b.mask.text}": _ban(b) for b in state.bans})
    record.update({f"inv:{k}": "1" for k in state.invites})
    return record


def _nick(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_nick(value):
        raise ValueError("bad nick")
    return value


def _time(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("bad time")
    return float(value)


def _is_key(text: str) -> bool:
    """A folded nick as ``name_key`` gives it (not always a valid nick itself: look-alikes fold)."""
    return 0 < len(text) <= 100 and text.isprintable() and " " not in text and name_key(text) == text


def load(name: str, record: Mapping[str, str], open_room: bool = False) -> tuple[RoomState, int]:
    """The rules of ``name`` from its record, and how many fields were skipped as unreadable."""
    skipped = 0
    topic: Topic | None = None
    flags = set(DEFAULT_FLAGS)
    key: str | None = None
    limit: int | None = None
    operators: set[str] = set()
    voiced: set[str] = set()
    bans: list[Ban] = []
    invites: list[str] = []
    for field, value in record.items():
        kind, _, arg = field.partition(":")
        try:
            if field == MARK:
                continue
            if field == "topic":
                text, nick, when = json.loads(value)
                text = sanitise(text).strip()[:MAX_TOPIC_CHARS] if isinstance(text, str) else ""
                topic = Topic(text, _nick(nick), _time(when)) if text else None
            elif kind == "mode" and len(arg) == 1 and arg in FLAGS and value in ("+", "-"):
                (flags.add if value == "+" else flags.discard)(arg)
            elif field == "key" and 0 < len(value) <= MAX_KEY_CHARS and " " not in value:
                key = value
            elif field == "limit" and value.isdigit() and 0 < int(value) <= MAX_LIMIT:
                limit = int(value)
            elif kind in ("op", "vo", "inv") and _is_key(arg):
                if kind == "inv":
                    invites.append(arg)
                else:
                    (operators if kind == "op" else voiced).add(arg)
            elif kind == "ban" and arg:
                nick, when = json.loads(value)
                bans.append(Ban(parse_mask(arg), _nick(nick), _time(when)))
            else:
                skipped += 1
        except (ValueError, TypeError, ClientError):
            skipped += 1
    bans.sort(key=lambda b: b.time)
    state = RoomState(
        name,
        topic=topic,
        operators=frozenset(operators),
        voiced=frozenset(voiced),
        flags=frozenset(flags),
        key=key,
        limit=limit,
        bans=tuple(bans[:MAX_BANS]),
        invites=tuple(sorted(invites)[-MAX_INVITES:]),
        open=open_room,
    )
    if open_room:  # the lobby takes no +i, +k, +l nor bans, whatever a record says
        state = replace(state, flags=state.flags - {"i"}, key=None, limit=None, bans=())
    return state, skipped


def encode_server_ban(ban: ServerBan) -> tuple[str, str]:
    """A server ban as its (field, text) in the server bans' record."""
    return ban.mask.text, json.dumps([ban.nick, ban.reason, ban.time])


def decode_server_ban(field: str, value: str) -> ServerBan:
    """The server ban of one field; raises ``ValueError`` (or ``ClientError`` for a bad mask)."""
    nick, reason, when = json.loads(value)
    if reason is not None:
        if not isinstance(reason, str):
            raise ValueError("bad reason")
        reason = sanitise(reason).strip()[:MAX_REASON_CHARS] or None
    return ServerBan(parse_mask(field), _nick(nick), reason, _time(when))


def load_server_bans(record: Mapping[str, str]) -> tuple[ServerBans, int]:
    """The server bans of their record, oldest first, and how many fields were skipped."""
    found: list[ServerBan] = []
    skipped = 0
    for field, value in record.items():
        try:
            found.append(decode_server_ban(field, value))
        except (ValueError, TypeError, ClientError):
            skipped += 1
    found.sort(key=lambda b: b.time)
    return ServerBans(tuple(found[:MAX_SERVER_BANS])), skipped
