"""Connection accounting: how many clients in all, and how many per address.

PURE: the shell asks ``admit(ip)`` for every accepted socket and calls
``release(ip)`` exactly once for every admitted one when it closes.  A refused
socket holds nothing, so it needs no release.
"""

from __future__ import annotations

__all__ = ["PER_IP", "SERVER_FULL", "ConnectionLimits"]

#: Refusal reasons; also the ``reason`` label of the refused-connections metric.
SERVER_FULL = "server_full"
PER_IP = "per_ip"


class ConnectionLimits:
    """At most ``max_clients`` in all and ``max_per_ip`` per address (0: no limit)."""

    __slots__ = ("_by_ip", "max_clients", "max_per_ip", "total")

    def __init__(self, max_clients: int, max_per_ip: int = 0) -> None:
        self.max_clients = max_clients
        self.max_per_ip = max_per_ip
        self.total = 0
        self._by_ip: dict[str, int] = {}

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; or return why it is refused."""
        if self.total >= self.max_clients:
            return SERVER_FULL
        held = self._by_ip.get(ip, 0)
        if self.max_per_ip and held >= self.max_per_ip:
            return PER_IP
        self.total += 1
        self._by_ip[ip] = held + 1
        return None

    def release(self, ip: str) -> None:
        """Forget one admitted connection from ``ip``."""
        held = self._by_ip[ip]  # KeyError: released more often than admitted (a bug)
        if held == 1:
            del self._by_ip[ip]
        else:
            self._by_ip[ip] = held - 1
        self.total -= 1

    def count(self, ip: str) -> int:
        return self._by_ip.get(ip, 0)
