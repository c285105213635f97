"""Flood control: a token bucket per connection.

PURE: no clock is read here; every call takes ``now`` (seconds, monotonic) from
the caller, so tests drive a fake clock, as ergo's fakelag tests do.

The shell does not drop what a bucket refuses: it stops reading that socket for
``delay(now)`` seconds, so TCP pushes back on the sender and nothing is lost.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; it starts full.

    One token pays for one line.  ``take`` hands out what is there (never
    more), and ``delay`` says how long until the next whole token exists.
    ``hold_back`` marks the sender as being slowed down, until the bucket is
    full again: one flood, however long, is one episode.
    """

    __slots__ = ("_stamp", "burst", "rate", "slowed", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._stamp = now
        self.slowed = False

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed > 0:  # a clock that goes backwards adds nothing
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self._stamp = now

    def take(self, n: int, now: float) -> int:
        """Take up to ``n`` tokens; returns how many were granted (0..n)."""
        self._refill(now)
        if self.tokens >= self.burst:
            self.slowed = False  # full again: the sender kept to the rate since
        granted = min(n, int(self.tokens))
        self.tokens -= granted
        return granted

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until one whole token is available (0 if one is)."""
        self._refill(now)
        if self.tokens >= 1:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def hold_back(self) -> bool:
        """Note that the sender waits for tokens; True if that starts an episode (tell them)."""
        started = not self.slowed
        self.slowed = True
        return started
