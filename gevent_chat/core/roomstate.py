"""A room's rules as a value: topic, operators, voices, modes, key, limit, bans, invites.

PURE and immutable: every change returns a new ``RoomState`` (with the event
that tells the room), so a room swaps its state under the registry's lock
and a broadcast reads a consistent one without it, and a cluster can apply
the same events in the same order on every node.

Every rule that decides lives here, for every protocol: who may set the
topic, speak in a ``+m`` room, join past ``+i``/``+k``/``+l`` and bans, change
modes, kick and invite.  A refusal raises one of ``core.errors``'
``RoomRefusal`` family, which carries what an IRC numeric needs.  Users are
named as typed and compared by ``names.name_key``.  Membership itself is the
registry's: a caller passes what this needs to know of it (is the room new,
how many members, who matches), and checks that the actor is a member.

``oper`` on a check means a server operator: they act as an operator of
every room and no join rule holds them back.

An ``open`` room (the lobby, where every line user starts and is sent back
to) belongs to the server: nobody runs it by creating it, nobody is kicked
or kept out of it, so ``+i``, ``+k``, ``+l`` and bans are refused there.
Its topic, ``+m`` and voices work as anywhere, run by server operators and
the operators they name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .errors import (
    BadKey,
    BanListFull,
    Banned,
    InviteOnly,
    Moderated,
    NotOperator,
    RoomFull,
    RoomRefusal,
    UserNotInRoom,
)
from .events import Invited, Kicked, ModeChanged, TopicSet
from .masks import Mask, parse_mask
from .modes import DEFAULT_FLAGS, Change
from .names import name_key
from .protocol import sanitise

__all__ = ["MAX_BANS", "MAX_INVITES", "MAX_TOPIC_CHARS", "Ban", "RoomState", "Topic"]

#: IRC's ``TOPICLEN`` (ergo's default 390; ngIRCd 490); a longer topic, or kick reason, is cut here.
MAX_TOPIC_CHARS = 390
#: Bans per room (ergo's ``MAXLIST=beI:100`` default); one more is refused.
MAX_BANS = 100
#: Pending invitations per room; the oldest is forgotten when a new one comes.
MAX_INVITES = 50


@dataclass(frozen=True, slots=True)
class Topic:
    """What the topic says, who set it, and when (seconds since the epoch, from the caller)."""

    text: str
    nick: str
    time: float


@dataclass(frozen=True, slots=True)
class Ban:
    """A ban ``mask`` set by ``nick`` at ``time`` (as IRC's ban list shows it)."""

    mask: Mask
    nick: str
    time: float


@dataclass(frozen=True, slots=True)
class RoomState:
    """The rules of the room ``name``; ``operators``, ``voiced`` and ``invites`` hold name keys."""

    name: str
    topic: Topic | None = None
    operators: frozenset[str] = frozenset()
    voiced: frozenset[str] = frozenset()
    flags: frozenset[str] = DEFAULT_FLAGS
    key: str | None = None
    limit: int | None = None
    bans: tuple[Ban, ...] = ()
    invites: tuple[str, ...] = ()
    open: bool = False

    # -- questions -------------------------------------------------------------

    def is_operator(self, nick: str, oper: bool = False) -> bool:
        """True if ``nick`` runs this room (a server operator, ``oper``, always does)."""
        return oper or name_key(nick) in self.operators

    def is_voiced(self, nick: str) -> bool:
        return name_key(nick) in self.voiced

    def is_secret(self) -> bool:
        return "s" in self.flags

    def banned(self, nick: str, address: str | None, user: str | None = None) -> Ban | None:
        """The first ban that covers ``nick`` from ``address``, if any."""
        if not self.bans:
            return None
        key = name_key(nick)
        return next((b for b in self.bans if b.mask.matches(nick, address, user, key)), None)

    def mode_words(self, show_key: bool = True) -> list[str]:
        """The modes as IRC shows them: ``["+kmnt", "KEY"]`` (the key hidden unless ``show_key``)."""
        letters = "".join(sorted(self.flags))
        args = []
        if self.key is not None:
            letters += "k"
            args.append(self.key if show_key else "*")
        if self.limit is not None:
            letters += "l"
            args.append(str(self.limit))
        return ["+" + letters, *args]

    # -- checks: raise a refusal, change nothing --------------------------------

    def check_operator(self, nick: str, oper: bool = False) -> None:
        if not self.is_operator(nick, oper):
            raise NotOperator(self.name)

    def check_join(
        self, nick: str, address: str | None, key: str | None, members: int, oper: bool = False
    ) -> None:
        """Raise ``Banned``, ``InviteOnly``, ``BadKey`` or ``RoomFull`` unless ``nick`` may join.

        ``members`` is how many are in the room now.  An invitation lets its
        holder past ``+i``, ``+k`` and ``+l``, never past a ban (an operator who
        wants a banned user in lifts the ban).
        """
        if oper or self.open:
            return
        if self.banned(nick, address) is not None:
            raise Banned(self.name)
        invited = name_key(nick) in self.invites
        if "i" in self.flags and not invited:
            raise InviteOnly(self.name)
        if self.key is not None and key != self.key and not invited:
            raise BadKey(self.name)
        if self.limit is not None and members >= self.limit and not invited:
            raise RoomFull(self.name)

    def check_speak(self, nick: str, oper: bool = False) -> None:
        """Raise ``Moderated`` (a ``CannotSend``) if the room is ``+m`` and ``nick`` has no voice."""
        if "m" in self.flags and not (self.is_operator(nick, oper) or self.is_voiced(nick)):
            raise Moderated(self.name)

    # -- changes: a new state and the event that tells the room -----------------

    def join(self, nick: str, creator: bool) -> RoomState:
        """``nick`` is in (after ``check_join``); the ``creator``, the first one in, runs the room."""
        key = name_key(nick)
        invites = tuple(k for k in self.invites if k != key)
        operators = self.operators | {key} if creator and not self.open else self.operators
        return replace(self, invites=invites, operators=operators)

    def leave(self, nick: str) -> RoomState:
        """``nick`` is out: their operator status and voice go with them."""
        key = name_key(nick)
        return replace(self, operators=self.operators - {key}, voiced=self.voiced - {key})

    def rename(self, old: str, new: str) -> RoomState:
        """The holder of ``old`` is now ``new``: their status follows them."""
        okey, nkey = name_key(old), name_key(new)
        if okey == nkey:
            return self

        def moved(keys: frozenset[str]) -> frozenset[str]:
            return keys - {okey} | {nkey} if okey in keys else keys

        return replace(self, operators=moved(self.operators), voiced=moved(self.voiced))

    def set_topic(self, nick: str, text: str, when: float, oper: bool = False) -> tuple[RoomState, TopicSet]:
        """Set the topic (sanitised, cut to ``MAX_TOPIC_CHARS``; empty clears it).

        Under ``+t`` only an operator may (``NotOperator``).
        """
        if "t" in self.flags:
            self.check_operator(nick, oper)
        text = sanitise(text).strip()[:MAX_TOPIC_CHARS]
        topic = Topic(text, nick, when) if text else None
        return replace(self, topic=topic), TopicSet(self.name, nick, text)

    def kick(self, by: str, nick: str, reason: str | None, oper: bool = False) -> tuple[RoomState, Kicked]:
        """``by`` removes ``nick`` (a member: the caller checked); ``NotOperator`` otherwise."""
        self.check_operator(by, oper)
        if self.open:
            raise RoomRefusal(self.name, f"nobody is kicked from #{self.name}; a server operator may /kill")
        reason = (sanitise(reason).strip()[:MAX_TOPIC_CHARS] or None) if reason else None
        return self.leave(nick), Kicked(self.name, nick, by, reason)

    def invite(self, by: str, nick: str, oper: bool = False) -> tuple[RoomState, Invited]:
        """``by`` (a member) invites ``nick``; in a ``+i`` room only an operator may."""
        if "i" in self.flags:
            self.check_operator(by, oper)
        key = name_key(nick)
        invites = (*(k for k in self.invites if k != key), key)[-MAX_INVITES:]
        return replace(self, invites=invites), Invited(self.name, nick, by)

    def change_modes(
        self,
        nick: str,
        changes: Iterable[Change],
        member: Callable[[str], str | None],
        when: float,
        oper: bool = False,
    ) -> tuple[RoomState, ModeChanged | None]:
        """Apply ``changes`` by ``nick`` (parsed by ``modes.parse_changes``), all or nothing.

        ``member(nick)`` gives a member's nick as they spell it, or None: the
        target of ``+o``/``+v`` must be in the room (``UserNotInRoom``).  Only
        operators change modes (``NotOperator``).  The event lists only the
        changes that changed something (none: None); a bare ``+b`` is a
        listing and changes nothing.
        """
        changes = [c for c in changes if not (c.letter == "b" and c.arg is None)]
        if not changes:
            return self, None
        self.check_operator(nick, oper)
        if self.open and any(c.letter in "iklb" for c in changes):
            why = "is open to everyone: +i, +k, +l and bans do not apply"
            raise RoomRefusal(self.name, f"#{self.name} {why}")
        state, done = self, []
        for change in changes:
            new, arg = state._apply(change, nick, member, when)
            if new is not state:
                state = new
                done.append((change.sign + change.letter, arg))
        return state, ModeChanged(self.name, nick, tuple(done)) if done else None

    def _apply(
        self, change: Change, nick: str, member: Callable[[str], str | None], when: float
    ) -> tuple[RoomState, str | None]:
        """One change; ``self`` itself when it changes nothing.  Returns the argument to show."""
        sign, letter, arg = change.sign, change.letter, change.arg
        adding = sign == "+"
        if letter in "ov":
            assert arg is not None
            target = member(arg)
            if target is None:
                raise UserNotInRoom(arg, self.name)
            key = name_key(target)
            held = self.operators if letter == "o" else self.voiced
            if (key in held) == adding:
                return self, target
            held = held | {key} if adding else held - {key}
            if letter == "o":
                return replace(self, operators=held), target
            return replace(self, voiced=held), target
        if letter == "k":
            if adding:
                return (self, arg) if self.key == arg else (replace(self, key=arg), arg)
            return (self, "*") if self.key is None else (replace(self, key=None), "*")
        if letter == "l":
            limit = int(arg) if adding and arg is not None else None
            return (self, arg) if self.limit == limit else (replace(self, limit=limit), arg)
        if letter == "b":
            assert arg is not None
            return self._ban(adding, parse_mask(arg), nick, when)
        if (letter in self.flags) == adding:
            return self, None
        return replace(self, flags=self.flags | {letter} if adding else self.flags - {letter}), None

    def _ban(self, adding: bool, mask: Mask, nick: str, when: float) -> tuple[RoomState, str]:
        found = next((b for b in self.bans if b.mask == mask), None)
        if not adding:
            if found is None:
                return self, mask.text
            return replace(self, bans=tuple(b for b in self.bans if b is not found)), found.mask.text
        if found is not None:
            return self, found.mask.text
        if len(self.bans) >= MAX_BANS:
            raise BanListFull(self.name, mask.text, MAX_BANS)
        return replace(self, bans=(*self.bans, Ban(mask, nick, when))), mask.text
