"""Server-wide bans (``/gban``): masks no user may connect or stay under.

PURE and immutable, like ``core.roomstate``: a change returns a new value,
so the server swaps it in one assignment and a cluster can apply the same
change on every node.  Matched like a room's bans (``core.masks``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import ClientError
from .masks import Mask, parse_mask
from .names import name_key
from .protocol import sanitise

__all__ = ["MAX_SERVER_BANS", "ServerBan", "ServerBans"]

#: Server-wide bans held at once; one more is refused (ergo keeps its K-lines unbounded on disk).
MAX_SERVER_BANS = 1000
#: A ban's reason is cut here, as a kick's.
MAX_REASON_CHARS = 300


@dataclass(frozen=True, slots=True)
class ServerBan:
    """``mask`` banned by the operator ``nick`` at ``time``, for ``reason`` (may be None)."""

    mask: Mask
    nick: str
    reason: str | None
    time: float


@dataclass(frozen=True, slots=True)
class ServerBans:
    """The server's bans, oldest first."""

    bans: tuple[ServerBan, ...] = ()

    def __len__(self) -> int:
        return len(self.bans)

    def matching(self, nick: str, address: str | None, user: str | None = None) -> ServerBan | None:
        """The first ban that covers ``nick`` from ``address``, if any."""
        if not self.bans:
            return None
        key = name_key(nick)
        return next((b for b in self.bans if b.mask.matches(nick, address, user, key)), None)

    def add(self, raw: str, nick: str, reason: str | None, when: float) -> tuple[ServerBans, ServerBan]:
        """Ban the mask on ``raw``; raises ``BadMask``, or ``ClientError`` when full or already banned."""
        mask = parse_mask(raw)
        if any(b.mask == mask for b in self.bans):
            raise ClientError(f"{mask.text} is already banned from the server")
        if len(self.bans) >= MAX_SERVER_BANS:
            raise ClientError(f"cannot ban {mask.text}: the server already has {MAX_SERVER_BANS} bans")
        reason = (sanitise(reason).strip()[:MAX_REASON_CHARS] or None) if reason else None
        ban = ServerBan(mask, nick, reason, when)
        return replace(self, bans=(*self.bans, ban)), ban

    def remove(self, raw: str) -> tuple[ServerBans, ServerBan]:
        """Lift the ban on the mask on ``raw``; raises ``BadMask``, or ``ClientError`` if none."""
        mask = parse_mask(raw)
        found = next((b for b in self.bans if b.mask == mask), None)
        if found is None:
            raise ClientError(f"{mask.text} is not banned from the server")
        return replace(self, bans=tuple(b for b in self.bans if b is not found)), found
