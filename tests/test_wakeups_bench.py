"""``python -m loadtest.wakeups`` runs, and prints one JSON line of positive figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.timeout(60)
def test_wakeups_prints_the_cost_of_each_kind_of_wake_up() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.wakeups", "--count", "50", "--gap-ms", "0.2"],
        capture_output=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["count"] == 50
    for kind in ("epoll_us", "gevent_timer_us", "gevent_sleep_us"):
        assert figures[kind] >= 0, kind
    assert set(figures["ping_pong_us"]) == {"parent", "child"}


@pytest.mark.timeout(30)
def test_wakeups_refuses_a_count_below_one() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.wakeups", "--count", "0"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    assert b"--count must be at least 1" in done.stderr
