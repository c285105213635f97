"""Who is connected under which nick, and in which room.

PURE: the lock is passed in (a ``gevent.lock.BoundedSemaphore`` in the server,
``contextlib.nullcontext()`` in tests) and held only to read or change these
maps, never across I/O.  Broadcasts read ``Room.members``, an immutable tuple
swapped here under the lock, so the fan-out path takes no lock at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from .errors import NickTaken
from .names import check_new_nick, check_new_room
from .names import name_key as casefold
from .rooms import DEFAULT_ROOM, Room

__all__ = ["Registry"]

M = TypeVar("M")


class Registry(Generic[M]):
    """Nick -> member and room -> members; a nick is in exactly one room.

    Invariants: every room member is a registered nick; every room has at
    least one member (an emptied room is forgotten, with its history); nicks
    are unique by ``str.casefold``.
    """

    def __init__(
        self,
        lock: AbstractContextManager[Any] | None = None,
        history_size: int = 0,
    ) -> None:
        self._lock: AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self._history_size = history_size
        self._members: dict[str, M] = {}
        self._nicks: dict[str, str] = {}  # folded -> as registered
        self._room_of: dict[str, Room[M]] = {}
        self._rooms: dict[str, Room[M]] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[M]:
        return iter(list(self._members.values()))

    def get(self, nick: str) -> M | None:
        return self._members.get(casefold(nick))

    def nick_of(self, nick: str) -> str | None:
        """The nick as its holder spelled it."""
        return self._nicks.get(casefold(nick))

    def room_of(self, nick: str) -> Room[M]:
        return self._room_of[casefold(nick)]

    def room(self, name: str) -> Room[M] | None:
        """The room called ``name``, if anyone is in it."""
        return self._rooms.get(casefold(name))

    def rooms(self) -> list[Room[M]]:
        return sorted(self._rooms.values(), key=lambda r: casefold(r.name))

    def add(self, nick: str, member: M, room: str = DEFAULT_ROOM) -> Room[M]:
        """Register ``nick``; raises ``NickTaken`` or ``NickInvalid``.  Returns the room joined."""
        key = casefold(nick)
        with self._lock:
            if key in self._members:
                raise NickTaken(f"nickname {nick} is taken, choose another")
            check_new_nick(nick)
            if casefold(room) not in self._rooms:
                check_new_room(room)
            self._members[key] = member
            self._nicks[key] = nick
            return self._enter(key, member, room)

    def remove(self, nick: str) -> Room[M] | None:
        """Forget ``nick``; returns the room it was in (None if unknown)."""
        key = casefold(nick)
        with self._lock:
            member = self._members.pop(key, None)
            if member is None:
                return None
            del self._nicks[key]
            return self._leave(key, member)

    def rename(self, old: str, new: str) -> None:
        """Give the holder of ``old`` the nick ``new``; raises ``NickTaken`` or ``NickInvalid``."""
        okey, nkey = casefold(old), casefold(new)
        with self._lock:
            if nkey in self._members and nkey != okey:
                raise NickTaken(f"nickname {new} is taken, choose another")
            check_new_nick(new)
            member = self._members.pop(okey)
            del self._nicks[okey]
            self._members[nkey] = member
            self._nicks[nkey] = new
            self._room_of[nkey] = self._room_of.pop(okey)

    def move(self, nick: str, room: str) -> tuple[Room[M], Room[M]]:
        """Move ``nick`` to ``room`` (created if new); returns (old, new).

        Raises ``ClientError`` if a new room's name mixes scripts.
        """
        key = casefold(nick)
        with self._lock:
            if casefold(room) not in self._rooms:
                check_new_room(room)
            member = self._members[key]
            old = self._leave(key, member)
            return old, self._enter(key, member, room)

    # The two helpers below run with the lock held.

    def _enter(self, key: str, member: M, name: str) -> Room[M]:
        rkey = casefold(name)
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
            del self._rooms[casefold(room.name)]
        return room
