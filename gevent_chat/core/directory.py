"""What the registry asks of the servers it shares a chat with: the ``Directory``.

PURE: an interface and nothing else.  A server on its own has no directory
(``Registry(directory=None)``), and its registry is the whole truth.  With
several servers (``--redis-url``), the directory is the cluster-wide view:
nick claims, who is in which room on every server, each room's history and
rules, and the server bans.
The registry calls it outside its lock (a directory may wait on the network),
and every read may answer None, meaning "not known now" (Redis is down): the
caller then uses its local view, so a server cut off from the others keeps
serving its own users.
"""

from __future__ import annotations

from typing import Protocol

from .records import Changes
from .rooms import HistoryEntry
from .roomstate import RoomState
from .serverbans import ServerBan

__all__ = ["Directory"]


class Directory(Protocol):
    """The cluster-wide side of the registry."""

    def claim(self, nick: str) -> bool:
        """Take ``nick`` for this server; False if another server holds it."""

    def release(self, nick: str) -> None:
        """Give ``nick`` up (disconnect, rename)."""

    def enter(self, nick: str, room: str) -> None:
        """``nick``, a user here, is now in ``room``."""

    def leave(self, nick: str, room: str) -> None:
        """``nick`` left ``room`` (or the server)."""

    def who(self, room: str) -> list[str] | None:
        """The nicks in ``room`` on every server, sorted; None if not known now."""

    def rooms(self) -> dict[str, int] | None:
        """Each room with users on some server -> how many; None if not known now."""

    def history(self, room: str) -> list[HistoryEntry] | None:
        """The room's remembered chat, oldest first; None if not known now."""

    def private(self, nick: str, payload: bytes) -> bool | None:
        """Send ``payload`` (a ``core.codec``-encoded ``Private``) to ``nick`` on another server:
        True sent, False no such user, None unknown."""

    def create(self, room: str, nick: str) -> bool | None:
        """True if ``nick``, a user here, is the creator of ``room`` (decided once for every server);
        False if it has one already; None unknown."""

    def rules(self, room: str) -> RoomState | None:
        """The rules every server holds for ``room``; None if it has none, or not known now."""

    def record(self, room: str, changes: Changes) -> None:
        """Keep ``changes`` (``core.records``) to ``room``'s rules, decided here, for every server."""

    def server_ban(self, ban: ServerBan, added: bool) -> None:
        """Keep the server ban ``ban`` (lift it: not ``added``) on every server."""

    def kill(self, nick: str, reason: str) -> bool | None:
        """Disconnect ``nick`` on another server: True told, False no such user, None unknown."""
