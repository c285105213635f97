"""Who is connected under which nick, and in which room.

PURE: the lock is passed in (a ``gevent.lock.BoundedSemaphore`` in the server,
``contextlib.nullcontext()`` in tests) and held only to read or change these
maps, never across I/O.  Broadcasts read ``Room.members``, an immutable tuple
swapped here under the lock, so the fan-out path takes no lock at all.

With several servers, an optional ``Directory`` (``core.directory``) holds the
cluster-wide truth: a nick is claimed there before it is added here, and
released after it is removed; joins, moves and leaves are reported to it.
Every call to the directory happens outside the lock, since it may wait on
the network.  Claims are per server: if two local users claim one nick at
once, both claims succeed and the local insert decides; the loser must not
release the claim, which the winner now holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from .directory import Directory
from .errors import NickTaken
from .names import check_new_nick, check_new_room, name_key
from .rooms import DEFAULT_ROOM, HistoryEntry, Room

__all__ = ["Registry"]

M = TypeVar("M")


class Registry(Generic[M]):
    """Nick -> member and room -> members; a nick is in exactly one room.

    Invariants: every room member is a registered nick; every room has at
    least one member (an emptied room is forgotten, with its history); nicks
    and room names are unique by ``name_key`` (``core/names.py``), under which
    look-alikes are one name.
    """

    def __init__(
        self,
        lock: AbstractContextManager[Any] | None = None,
        history_size: int = 0,
        directory: Directory | None = None,
    ) -> None:
        self._lock: AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self._history_size = history_size
        #: The cluster-wide view (None: this server is the whole chat).
        self.directory = directory
        self._members: dict[str, M] = {}
        self._nicks: dict[str, str] = {}  # folded -> as registered
        self._room_of: dict[str, Room[M]] = {}
        self._rooms: dict[str, Room[M]] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[M]:
        return iter(list(self._members.values()))

    def get(self, nick: str) -> M | None:
        return self._members.get(name_key(nick))

    def nick_of(self, nick: str) -> str | None:
        """The nick as its holder spelled it."""
        return self._nicks.get(name_key(nick))

    def room_of(self, nick: str) -> Room[M]:
        return self._room_of[name_key(nick)]

    def room(self, name: str) -> Room[M] | None:
        """The room called ``name``, if anyone is in it."""
        return self._rooms.get(name_key(name))

    def rooms(self) -> list[Room[M]]:
        return sorted(self._rooms.values(), key=lambda r: name_key(r.name))

    def add(self, nick: str, member: M, room: str = DEFAULT_ROOM) -> Room[M]:
        """Register ``nick``; raises ``NickTaken`` or ``NickInvalid``.  Returns the room joined."""
        key = name_key(nick)
        if key not in self._members:
            check_new_nick(nick)  # before any claim: an invalid nick must claim nothing
        if self.directory is not None:
            self._claim(key, nick)
        with self._lock:
            if key in self._members:
                raise NickTaken(f"nickname {nick} is taken, choose another")
            if name_key(room) not in self._rooms:
                check_new_room(room)
            self._members[key] = member
            self._nicks[key] = nick
            joined = self._enter(key, member, room)
        if self.directory is not None:
            self.directory.enter(nick, joined.name)
        return joined

    def remove(self, nick: str) -> Room[M] | None:
        """Forget ``nick``; returns the room it was in (None if unknown)."""
        key = name_key(nick)
        with self._lock:
            member = self._members.pop(key, None)
            if member is None:
                return None
            del self._nicks[key]
            left = self._leave(key, member)
        if self.directory is not None:
            self.directory.leave(nick)
            self.directory.release(nick)
        return left

    def rename(self, old: str, new: str) -> None:
        """Give the holder of ``old`` the nick ``new``; raises ``NickTaken`` or ``NickInvalid``."""
        okey, nkey = name_key(old), name_key(new)
        if nkey in self._members and nkey != okey:
            raise NickTaken(f"nickname {new} is taken, choose another")
        check_new_nick(new)  # before any claim, as in ``add``
        if self.directory is not None:
            if nkey != okey:
                self._claim(nkey, new)
            else:
                self.directory.claim(new)  # already held: only its spelling changes
        with self._lock:
            if nkey in self._members and nkey != okey:
                raise NickTaken(f"nickname {new} is taken, choose another")
            if okey not in self._members:  # renamed by the server while the claim waited
                raise NickTaken(f"nickname {old} is no longer yours")
            member = self._members.pop(okey)
            del self._nicks[okey]
            self._members[nkey] = member
            self._nicks[nkey] = new
            self._room_of[nkey] = room = self._room_of.pop(okey)
        directory = self.directory
        if directory is not None:
            if nkey != okey:  # entering first keeps the room's subscription open
                directory.enter(new, room.name)
                directory.leave(old)
                directory.release(old)
            else:
                directory.leave(old)
                directory.enter(new, room.name)

    def move(self, nick: str, room: str) -> tuple[Room[M], Room[M]]:
        """Move ``nick`` to ``room`` (created if new); returns (old, new).

        Raises ``ClientError`` if a new room's name mixes scripts.
        """
        key = name_key(nick)
        with self._lock:
            if name_key(room) not in self._rooms:
                check_new_room(room)
            member = self._members[key]
            old = self._leave(key, member)
            new = self._enter(key, member, room)
        if self.directory is not None:
            self.directory.leave(nick)
            self.directory.enter(self._nicks.get(key, nick), new.name)
        return old, new

    # -- the cluster-wide view: the directory's answer, else this server's ----------

    def _claim(self, key: str, nick: str) -> None:
        """Claim ``nick`` in the directory (outside the lock); raises ``NickTaken``."""
        assert self.directory is not None
        if key in self._members or not self.directory.claim(nick):
            raise NickTaken(f"nickname {nick} is taken, choose another")

    def users_online(self) -> int:
        """Users on every server (this one's alone without a directory, or when it cannot tell)."""
        counts = self.directory.rooms() if self.directory is not None else None
        return len(self._members) if counts is None else max(len(self._members), sum(counts.values()))

    def who(self, room: Room[M]) -> list[str] | None:
        """The nicks in ``room`` on every server, sorted; None: use the room's local members."""
        return self.directory.who(room.name) if self.directory is not None else None

    def room_counts(self) -> dict[str, int] | None:
        """Rooms on every server -> users; None: use ``rooms()``."""
        return self.directory.rooms() if self.directory is not None else None

    def history_of(self, room: Room[M]) -> Sequence[HistoryEntry]:
        """The room's remembered lines: the cluster's, else this server's."""
        found = self.directory.history(room.name) if self.directory is not None else None
        return room.history if found is None else found

    def private(self, nick: str, line: bytes) -> bool | None:
        """Send ``line`` to ``nick`` on another server: True sent, False nobody, None cannot tell."""
        return self.directory.private(nick, line) if self.directory is not None else False

    # The two helpers below run with the lock held.

    def _enter(self, key: str, member: M, name: str) -> Room[M]:
        rkey = name_key(name)
        room = self._rooms.get(rkey)
        if room is None:
            room = self._rooms[rkey] = Room(name, self._history_size)
        room.members = (*room.members, member)
        self._room_of[key] = room
        return room

    def _leave(self, key: str, member: M) -> Room[M]:
        room = self._room_of.pop(key)
        room.members = tuple(m for m in room.members if m is not member)
        if not room.members:
            del self._rooms[name_key(room.name)]
        return room
