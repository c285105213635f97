"""Who is connected under which nick, and in which rooms.

PURE: the lock is passed in (a ``gevent.lock.BoundedSemaphore`` in the server,
``contextlib.nullcontext()`` in tests) and held only to read or change these
maps, never across I/O.  Broadcasts read ``Room.members``, an immutable tuple
swapped here under the lock, so the fan-out path takes no lock at all.

With several servers, an optional ``Directory`` (``core.directory``) holds the
cluster-wide truth: a nick is claimed there before it is added here, and
released after it is removed; each entry to and exit from a room is reported to it.
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

from . import codec
from .directory import Directory
from .errors import NickTaken, NotInRoom, TooManyRooms
from .events import Private
from .names import check_new_nick, check_new_room, name_key
from .rooms import DEFAULT_ROOM, HistoryEntry, Room
from .serverbans import ServerBans

__all__ = ["Registry"]

M = TypeVar("M")


class Registry(Generic[M]):
    """Nick -> member, nick -> rooms (in the order joined), room -> members.

    Invariants: every room member is a registered nick; every room has at
    least one member (an emptied room is forgotten, with its history); a
    user is in at most ``max_rooms`` rooms, maybe none (an IRC client before
    its first JOIN); nicks and room names are unique by ``name_key``
    (``core/names.py``), under which look-alikes are one name.
    """

    def __init__(
        self,
        lock: AbstractContextManager[Any] | None = None,
        history_size: int = 0,
        directory: Directory | None = None,
        max_rooms: int = 20,
    ) -> None:
        self._lock: AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self._history_size = history_size
        #: The cluster-wide view (None: this server is the whole chat).
        self.directory = directory
        #: Rooms one user may be in at once.
        self.max_rooms = max_rooms
        self._members: dict[str, M] = {}
        self._nicks: dict[str, str] = {}  # folded -> as registered
        self._rooms_of: dict[str, dict[str, Room[M]]] = {}  # folded nick -> folded room -> room
        self._rooms: dict[str, Room[M]] = {}
        #: The server-wide bans (``/gban``), replaced whole on every change.
        self.server_bans = ServerBans()

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[M]:
        return iter(list(self._members.values()))

    def get(self, nick: str) -> M | None:
        return self._members.get(name_key(nick))

    def nick_of(self, nick: str) -> str | None:
        """The nick as its holder spelled it."""
        return self._nicks.get(name_key(nick))

    def rooms_of(self, nick: str) -> tuple[Room[M], ...]:
        """The rooms ``nick`` is in, in the order joined (none for an unknown nick)."""
        rooms = self._rooms_of.get(name_key(nick))
        return tuple(rooms.values()) if rooms else ()

    def room_of(self, nick: str) -> Room[M]:
        """The first room ``nick`` joined (a line user's only one); raises ``KeyError`` if in none."""
        rooms = self._rooms_of.get(name_key(nick))
        if not rooms:
            raise KeyError(nick)
        return next(iter(rooms.values()))

    def is_in(self, nick: str, room: str) -> bool:
        return name_key(room) in self._rooms_of.get(name_key(nick), ())

    def room(self, name: str) -> Room[M] | None:
        """The room called ``name``, if anyone is in it."""
        return self._rooms.get(name_key(name))

    def rooms(self) -> list[Room[M]]:
        return sorted(self._rooms.values(), key=lambda r: name_key(r.name))

    def add(self, nick: str, member: M, room: str | None = DEFAULT_ROOM) -> Room[M] | None:
        """Register ``nick``, in ``room`` unless it is None; raises ``NickTaken`` or ``NickInvalid``.

        Returns the room joined.
        """
        key = name_key(nick)
        if key not in self._members:
            check_new_nick(nick)  # before any claim: an invalid nick must claim nothing
        if self.directory is not None:
            self._claim(key, nick)
        elsewhere = self._elsewhere(room)
        with self._lock:
            if key in self._members:
                raise NickTaken(f"nickname {nick} is taken, choose another")
            if room is not None and name_key(room) not in self._rooms:
                check_new_room(room)
            self._members[key] = member
            self._nicks[key] = nick
            self._rooms_of[key] = {}
            joined = None if room is None else self._enter(key, member, room, elsewhere)
        if self.directory is not None and joined is not None:
            self.directory.enter(nick, joined.name)
        return joined

    def remove(self, nick: str) -> tuple[Room[M], ...] | None:
        """Forget ``nick``; returns the rooms it was in (None if unknown)."""
        key = name_key(nick)
        with self._lock:
            member = self._members.pop(key, None)
            if member is None:
                return None
            left = tuple(self._leave(key, member, rkey) for rkey in list(self._rooms_of[key]))
            del self._nicks[key]
            del self._rooms_of[key]
        if self.directory is not None:
            for room in left:
                self.directory.leave(nick, room.name)
            self.directory.release(nick)
        return left

    def rename(self, old: str, new: str) -> tuple[Room[M], ...]:
        """Give the holder of ``old`` the nick ``new``; raises ``NickTaken`` or ``NickInvalid``.

        Returns the rooms the user is in.
        """
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
            self._rooms_of[nkey] = rooms = self._rooms_of.pop(okey)
            held = tuple(rooms.values())
            for room in held:  # operator status and voice follow the user
                room.state = room.state.rename(old, new)
        directory = self.directory
        if directory is not None:
            for room in held:
                if nkey != okey:  # entering first keeps the room's subscription open
                    directory.enter(new, room.name)
                    directory.leave(old, room.name)
                else:
                    directory.leave(old, room.name)
                    directory.enter(new, room.name)
            if nkey != okey:
                directory.release(old)
        return held

    def join(self, nick: str, room: str) -> Room[M]:
        """Put ``nick`` in ``room`` too (created if new); returns it, unchanged if already in.

        Raises ``TooManyRooms`` past ``max_rooms``, ``ClientError`` if a new
        room's name mixes scripts.
        """
        key, rkey = name_key(nick), name_key(room)
        elsewhere = self._elsewhere(room)
        with self._lock:
            held = self._rooms_of[key]
            if rkey in held:
                return held[rkey]
            if len(held) >= self.max_rooms:
                raise TooManyRooms(room, self.max_rooms)
            if rkey not in self._rooms:
                check_new_room(room)
            joined = self._enter(key, self._members[key], room, elsewhere)
        if self.directory is not None:
            self.directory.enter(self._nicks.get(key, nick), joined.name)
        return joined

    def part(self, nick: str, room: str) -> Room[M]:
        """Take ``nick`` out of ``room``; returns it.  Raises ``NotInRoom``."""
        key, rkey = name_key(nick), name_key(room)
        with self._lock:
            held = self._rooms_of.get(key)
            if held is None or rkey not in held:
                raise NotInRoom(room)
            left = self._leave(key, self._members[key], rkey)
        if self.directory is not None:
            self.directory.leave(self._nicks.get(key, nick), left.name)
        return left

    def move(self, nick: str, room: str) -> tuple[Room[M], Room[M]]:
        """Move ``nick`` from its first room to ``room`` (created if new); returns (old, new).

        The line protocol's ``/join``.  Raises ``ClientError`` if a new room's
        name mixes scripts.
        """
        key = name_key(nick)
        elsewhere = self._elsewhere(room)
        with self._lock:
            if name_key(room) not in self._rooms:
                check_new_room(room)
            member = self._members[key]
            old = self._leave(key, member, next(iter(self._rooms_of[key])))
            new = self._enter(key, member, room, elsewhere)
        if self.directory is not None:
            spelled = self._nicks.get(key, nick)
            self.directory.leave(spelled, old.name)
            self.directory.enter(spelled, new.name)
        return old, new

    # -- the cluster-wide view: the directory's answer, else this server's ----------

    def _elsewhere(self, room: str | None) -> bool:
        """True if ``room`` is not here but has users on other servers (then nobody here creates it).

        Asked of the directory, outside the lock; without an answer, no.
        """
        if room is None or self.directory is None or name_key(room) in self._rooms:
            return False
        if name_key(room) == name_key(DEFAULT_ROOM):
            return False  # an open room has no creator: no need to ask
        counts = self.directory.rooms() or {}
        return any(name_key(name) == name_key(room) and n > 0 for name, n in counts.items())

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

    def private(self, nick: str, event: Private) -> bool | None:
        """Send ``event`` to ``nick`` on another server: True sent, False nobody, None cannot tell."""
        return self.directory.private(nick, codec.encode(event)) if self.directory is not None else False

    # The two helpers below run with the lock held.

    def _enter(self, key: str, member: M, name: str, elsewhere: bool = False) -> Room[M]:
        """Put ``member`` in ``name``; ``elsewhere``: the room has users on other servers."""
        rkey = name_key(name)
        room = self._rooms.get(rkey)
        created = room is None and not elsewhere
        if room is None:
            room = self._rooms[rkey] = Room(name, self._history_size)
        # The creator, the first one in, runs the room (an open room excepted).
        room.state = room.state.join(self._nicks[key], creator=created)
        room.members = (*room.members, member)
        self._rooms_of[key][rkey] = room
        return room

    def _leave(self, key: str, member: M, rkey: str) -> Room[M]:
        room = self._rooms_of[key].pop(rkey)
        room.members = tuple(m for m in room.members if m is not member)
        room.state = room.state.leave(self._nicks.get(key, key))
        if not room.members:
            del self._rooms[rkey]
        return room
