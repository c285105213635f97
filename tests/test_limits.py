"""ConnectionLimits: totals and per-address counts, as plain calls."""

from __future__ import annotations

import pytest

from gevent_chat.core.limits import PER_IP, SERVER_FULL, ConnectionLimits


def test_server_full_after_max_clients() -> None:
    limits = ConnectionLimits(max_clients=2)
    assert limits.admit("10.0.0.1") is None
    assert limits.admit("10.0.0.2") is None
    assert limits.admit("10.0.0.3") == SERVER_FULL
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.3") is None


def test_per_ip_limit_counts_each_address_apart() -> None:
    limits = ConnectionLimits(max_clients=100, max_per_ip=2)
    assert limits.admit("a") is None
    assert limits.admit("a") is None
    assert limits.admit("a") == PER_IP
    assert limits.admit("b") is None
    limits.release("a")
    assert limits.admit("a") is None
    assert limits.count("a") == 2


def test_zero_per_ip_is_unlimited() -> None:
    limits = ConnectionLimits(max_clients=1000, max_per_ip=0)
    assert all(limits.admit("a") is None for _ in range(1000))
    assert limits.admit("a") == SERVER_FULL


def test_refused_connections_hold_nothing() -> None:
    limits = ConnectionLimits(max_clients=1, max_per_ip=1)
    limits.admit("a")
    assert limits.admit("a") == SERVER_FULL
    limits.release("a")
    assert limits.total == 0
    assert limits.count("a") == 0


def test_release_without_admit_is_a_bug() -> None:
    with pytest.raises(KeyError):
        ConnectionLimits(1).release("a")
