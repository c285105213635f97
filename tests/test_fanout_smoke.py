"""Smoke runs of the benchmarks: a tiny closed-loop fan-out scenario end to end,
and the per-delivery micro-benchmark.

The full benchmark is run by hand (``python -m loadtest.fanout``); this only
proves that it starts the server, sees deliveries and checks them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from loadtest.fanout.server import ServerProcess
from loadtest.processes import LoggedProcess


# A subprocess generator plus a subprocess server, each importing gevent, on a
# shared 2-core machine: startup alone can take a few seconds.
@pytest.mark.timeout(60)
def test_tiny_fanout_run_reports_deliveries_and_no_losses() -> None:
    argv = [sys.executable, "-m", "loadtest.fanout", "--scenario", "fanout-100"]
    argv += ["--clients", "10", "--duration", "1", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1, done.stdout
    row = rows[0]
    assert row["scenario"] == "fanout-100"
    assert row["clients"] == 10
    assert row["deliveries_per_s"] > 0
    assert row["p50_ms"] is not None
    assert (row["lost"], row["dup"], row["ooo"], row["seq_gaps"]) == (0, 0, 0, 0)
    assert row["server_cpu_pct"] > 0
    assert row["server_rss_mb"] > 0


@pytest.mark.timeout(60)
def test_delivery_benchmark_checks_every_byte_and_prints_its_figures() -> None:
    argv = [sys.executable, "-m", "loadtest.delivery", "--recipients", "20", "--per-turn", "3"]
    argv += ["--rounds", "50", "--repeat", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("20 recipients, 3 line(s) each per turn")
    figures = {line.split()[0]: float(line.split()[1]) for line in lines[1:4]}
    assert set(figures) == {"bare", "hub", "queue"}
    assert all(value > 0 for value in figures.values())
    assert lines[4].startswith("python cost of a delivery (hub - bare): ")


@pytest.mark.timeout(30)
def test_a_benchmark_server_that_fails_to_start_says_why() -> None:
    """The server's own error reaches the benchmark's, read before the log is removed."""
    with pytest.raises(RuntimeError, match="unrecognized arguments: --no-such-flag") as failed:
        ServerProcess(extra_args=["--no-such-flag"])
    assert "server did not start" in str(failed.value)


@pytest.mark.timeout(30)
def test_a_benchmark_process_can_be_stopped_twice_and_leaves_no_log() -> None:
    # It stays up until stopped, so the outcome does not hang on when it would exit by itself.
    says_it_listens = (
        "import sys, time; sys.stderr.write('listening on x:1\\n'); sys.stderr.flush(); time.sleep(60)"
    )
    child = LoggedProcess([sys.executable, "-c", says_it_listens], "probe-")
    assert child.listening_on(10.0) == b"x:1\n"
    child.stop()
    child.stop()  # a failed start stops it, and so does the caller's finally
    assert child.proc.returncode == -signal.SIGTERM
    assert not os.path.exists(child.log.name)
