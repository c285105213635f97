"""The command line: ``python -m loadtest.fanout``; see the package docstring."""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import gevent

from . import __doc__ as PACKAGE_DOC
from .report import cpu_model, format_row, header, median_row
from .scenarios import PRECISE_TIMERS, SCENARIOS
from .server import EXTRA_SERVER_ARGS, SERVER_CORE, pin_generator, raise_nofile


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.fanout", description=(PACKAGE_DOC or "").split("\n")[0]
    )
    p.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument(
        "--duration", type=float, default=0.0, help="seconds of measurement (default 10; slow-consumer 60)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario; adds a median row")
    p.add_argument("--clients", type=int, default=0, help="override the scenario's client count")
    p.add_argument("--senders", type=int, default=0, help="override the closed-loop sender count")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="pass a flag to the server, e.g. --server-arg=--outbox-size=2000 (repeatable)",
    )
    args = p.parse_args(argv)
    if args.scenario == "all":
        return _run_each_in_own_process(list(argv if argv is not None else sys.argv[1:]), args.json)
    if args.scenario in PRECISE_TIMERS:
        gevent.config.libev_backend = "select"  # before anything creates the hub
    EXTRA_SERVER_ARGS[:] = args.server_arg
    pin_generator()
    raise_nofile(4096)
    # The generator makes almost no reference cycles; a full collection walking every
    # client and greenlet mid-run would stall all readers at once and show up as
    # server latency.  Collect between runs instead.
    gc.disable()
    names = [args.scenario]
    if not args.json:
        cpu = cpu_model()
        print(f"# {cpu}; server on core {SERVER_CORE}, generator on {sorted(os.sched_getaffinity(0))}")
        print(header())
    for name in names:
        runs = []
        for _ in range(args.repeat):
            result = SCENARIOS[name](args)
            gc.collect()
            runs.append(result)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(format_row(result), flush=True)
        if args.repeat > 1:
            m = median_row(runs)
            print(json.dumps(m) if args.json else format_row({**m, "scenario": f"{name} (med)"}), flush=True)
    return 0


def _run_each_in_own_process(argv: list[str], as_json: bool) -> int:
    """Run every scenario as ``python -m loadtest.fanout --scenario NAME``, in turn."""
    rest = [a for a in argv if a != "--scenario=all"]
    if "--scenario" in rest:
        i = rest.index("--scenario")
        del rest[i : i + 2]
    status = 0
    for n, name in enumerate(SCENARIOS):
        # Print the table header once: later children's "#" and header lines are dropped.
        child = subprocess.run(
            [sys.executable, "-m", "loadtest.fanout", "--scenario", name, *rest],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        for line in child.stdout.splitlines():
            if as_json or n == 0 or not (line.startswith("#") or line.startswith("scenario")):
                print(line, flush=True)
        status = status or child.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
