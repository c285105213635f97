"""What IRC knows of a user beyond their nick: user name, real name, host, away, modes.

PURE.  One ``Profiles`` per server, beside the registry: IRC sessions add
and drop their users' profiles; line users have none, and are shown as
``nick!nick@server``.  ``masks`` (nick as spelled -> ``user@cloak``) is
what the renderers read to give each line its source.  Departed users are
kept a while for WHOWAS.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field

from ..names import name_key

__all__ = ["Profile", "Profiles", "cloak"]

#: Departed users remembered for WHOWAS (ngircd keeps 64).
WHOWAS_SIZE = 64


def cloak(address: str, secret: str) -> str:
    """The host shown for ``address``: a keyed hash, stable for one address on one server."""
    digest = hashlib.blake2s(address.encode(), key=secret.encode()[:32], digest_size=6).hexdigest()
    return f"{digest[:4]}.{digest[4:8]}.{digest[8:]}.ip"


@dataclass
class Profile:
    """One IRC user's details; ``host`` is the real address, shown to server operators only."""

    user: str
    realname: str
    host: str
    cloak: str
    signon: float
    away: str | None = None
    modes: set[str] = field(default_factory=set)
    #: The capabilities the client negotiated (live: CAP REQ after registration shows here).
    caps: Container[str] = frozenset()


@dataclass(frozen=True)
class Departed:
    """A WHOWAS record."""

    nick: str
    user: str
    host: str
    realname: str


class Profiles:
    """Nick -> ``Profile`` for this server's IRC users, and the masks the renderers use."""

    def __init__(self) -> None:
        self._by_key: dict[str, Profile] = {}
        #: Nick as spelled -> ``user@cloak``, for renderers.
        self.masks: dict[str, str] = {}
        self._departed: deque[Departed] = deque(maxlen=WHOWAS_SIZE)
        self._peak = 0

    def invisible(self) -> int:
        """IRC users with user mode +i."""
        return sum("i" in p.modes for p in self._by_key.values())

    def opers(self) -> int:
        """IRC users with user mode +o."""
        return sum("o" in p.modes for p in self._by_key.values())

    def peak(self, users: int) -> int:
        """The most users seen at once, ``users`` now included."""
        self._peak = max(self._peak, users)
        return self._peak

    def get(self, nick: str) -> Profile | None:
        return self._by_key.get(name_key(nick))

    def add(self, nick: str, profile: Profile) -> None:
        self._by_key[name_key(nick)] = profile
        self.masks[nick] = f"{profile.user}@{profile.cloak}"

    def rename(self, old: str, new: str) -> None:
        profile = self._by_key.pop(name_key(old), None)
        if profile is not None:
            self._record(old, profile)
            self.add(new, profile)

    def remove(self, nick: str) -> None:
        """Forget ``nick``'s profile; its mask stays a while, for the quit still to be rendered."""
        profile = self._by_key.pop(name_key(nick), None)
        if profile is not None:
            self._record(nick, profile)

    def whowas(self, nick: str) -> list[Departed]:
        """The remembered holders of ``nick``, most recent first."""
        key = name_key(nick)
        return [d for d in reversed(self._departed) if name_key(d.nick) == key]

    def _record(self, nick: str, profile: Profile) -> None:
        """Remember a departure; the mask of the one it pushes out goes, unless its nick is held again."""
        if len(self._departed) == self._departed.maxlen:
            oldest = self._departed[0].nick
            if name_key(oldest) not in self._by_key:
                self.masks.pop(oldest, None)
        self._departed.append(Departed(nick, profile.user, profile.cloak, profile.realname))
