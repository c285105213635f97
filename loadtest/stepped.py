"""A stepped load shape: ramp up in steps, hold each, ramp down, stop.

Load it next to the locustfile, so an operator sees at which user count the
delivery latency bends::

    locust -f loadtest/locustfile.py,loadtest/stepped.py --headless \\
        --host 127.0.0.1:8000 --step-users 100 --step-peak 500 --step-time 30

With a shape loaded, ``-u``, ``-r`` and ``-t`` are ignored: the levels come
from ``chatload.step_levels`` and each is held for ``--step-time`` seconds,
users being added or removed at ``--step-users`` per second.
"""

from __future__ import annotations

from typing import Any

# locust puts this file's folder on sys.path, wherever it is run from
from chatload import step_levels
from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--step-users", type=int, default=50, help="users added (then removed) per step (default 50)"
    )
    parser.add_argument("--step-peak", type=int, default=250, help="users at the top (default 250)")
    parser.add_argument(
        "--step-time", type=float, default=30.0, help="seconds each step is held (default 30)"
    )


class SteppedShape(LoadTestShape):
    """Levels from ``step_levels(--step-users, --step-peak)``, ``--step-time`` seconds each."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        step = getattr(options, "step_users", 50)
        levels = step_levels(step, getattr(options, "step_peak", 250))
        index = int(self.get_run_time() // max(1.0, getattr(options, "step_time", 30.0)))
        if index >= len(levels):
            return None
        return levels[index], float(step)
