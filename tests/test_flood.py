"""TokenBucket driven by a fake clock: the numbers flood control rests on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.flood import TokenBucket


def test_full_bucket_grants_the_burst_then_nothing() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(100, now=0.0) == 20
    assert bucket.take(1, now=0.0) == 0


def test_tokens_refill_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    bucket.take(20, now=0.0)
    assert bucket.take(100, now=0.5) == 5  # 0.5 s x 10/s


def test_refill_never_exceeds_the_burst() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    bucket.take(20, now=0.0)
    assert bucket.take(100, now=3600.0) == 20


def test_delay_says_when_the_next_token_exists() -> None:
    bucket = TokenBucket(rate=4, burst=1, now=0.0)
    assert bucket.delay(now=0.0) == 0.0
    bucket.take(1, now=0.0)
    assert bucket.delay(now=0.0) == pytest.approx(0.25)
    assert bucket.delay(now=0.1) == pytest.approx(0.15)
    assert bucket.take(1, now=0.25) == 1


def test_a_flood_is_one_episode_until_the_bucket_is_full_again() -> None:
    """A failure means a flooder is told to slow down at every pause, or
    never again after its first flood."""
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(100, now=0.0) == 20
    assert bucket.hold_back() is True  # the flood starts: tell them
    assert bucket.take(80, now=0.5) == 5
    assert bucket.hold_back() is False  # the same flood, a later pause
    assert bucket.take(75, now=1.9) == 14  # 1.4 s of tokens: never full in between
    assert bucket.hold_back() is False
    assert bucket.take(30, now=10.0) == 20  # quiet long enough to refill: that flood is over
    assert bucket.hold_back() is True


def test_clock_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=100.0)
    bucket.take(5, now=100.0)
    assert bucket.take(5, now=50.0) == 0
    assert bucket.take(5, now=100.0) == 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (10, 0)])
def test_nonsense_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst, 0.0)


@given(
    rate=st.floats(min_value=0.5, max_value=1000),
    burst=st.integers(min_value=1, max_value=100),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=0, max_value=50)),
        max_size=50,
    ),
)
def test_grants_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    """The guarantee flood control gives: over any run, lines <= burst + rate x time."""
    bucket = TokenBucket(rate, burst, 0.0)
    now, granted = 0.0, 0
    for dt, want in steps:
        now += dt
        got = bucket.take(want, now)
        assert 0 <= got <= want
        granted += got
        # Waiting ``delay`` always makes at least one token available.
        wait = bucket.delay(now)
        assert wait == 0.0 or (bucket.take(1, now + wait + 1e-9) == 1 and bucket.tokens >= -1e-9)
        if wait:
            granted += 1
            now += wait + 1e-9
    assert granted <= burst + rate * now + 1e-6
