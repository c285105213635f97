"""Connection accounting: how many clients in all, and how many per address.

PURE: the shell asks ``admit(ip)`` for every accepted socket and calls
``release(ip)`` exactly once for every admitted one when it closes.  A refused
socket holds nothing, so it needs no release.
"""

from __future__ import annotations

from collections import OrderedDict, deque

__all__ = ["PASSWORD_FAILURES", "PER_IP", "SERVER_FULL", "ConnectionLimits", "FailureBudget"]

#: Refusal reasons; also the ``reason`` label of the refused-connections metric.
SERVER_FULL = "server_full"
PER_IP = "per_ip"
PASSWORD_FAILURES = "password_failures"

#: Addresses a ``FailureBudget`` remembers; the one that failed longest ago goes first.
MAX_TRACKED_ADDRESSES = 10000


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


class FailureBudget:
    """At most ``limit`` failures per address within ``window`` seconds (0: no limit).

    The server password's own delay slows one connection; this bounds what
    parallel connections from one address can guess.  ``now`` is a
    monotonic time from the caller.  Memory is bounded: at most
    ``MAX_TRACKED_ADDRESSES`` addresses, ``limit`` times each.
    """

    __slots__ = ("_failures", "limit", "window")

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def record(self, ip: str, now: float) -> None:
        """Count one failure from ``ip``."""
        if not self.limit:
            return
        times = self._failures.pop(ip, None)
        if times is None:
            times = deque(maxlen=self.limit)
            if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                self._failures.popitem(last=False)
        times.append(now)
        self._failures[ip] = times  # most recent last

    def exhausted(self, ip: str, now: float) -> bool:
        """True if ``ip`` has failed ``limit`` times within the last ``window`` seconds."""
        times = self._failures.get(ip)
        if times is None or len(times) < self.limit:
            return False
        return now - times[0] < self.window
