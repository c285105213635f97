"""When and as whom the client reconnects after a dropped connection.

PURE: no I/O, no clock, no ``random`` module state of its own: the caller
passes the random number, so tests can pin it.

Backoff is exponential and capped, with "equal jitter" (half the delay fixed,
half random), so a restarted server is not hit by every client at the same
instant, while no client retries sooner than half its nominal delay.
"""

from __future__ import annotations

from ..core.names import alternate_nick

__all__ = ["BASE_DELAY", "MAX_DELAY", "alternate_nick", "backoff_delay"]

#: First retry after about half a second: a server restart is usually that quick.
BASE_DELAY = 0.5
#: Never wait more than this between tries (ssh's ServerAliveInterval-like scale).
MAX_DELAY = 30.0


def backoff_delay(attempt: int, rand: float, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before try number ``attempt`` (0 is the first retry).

    ``rand`` is a number in [0, 1); the result lies in [d/2, d] where
    ``d = min(cap, base * 2**attempt)``.
    """
    nominal: float = min(cap, base * 2.0 ** min(attempt, 32))
    return nominal / 2 + rand * nominal / 2
