"""gevent-chat next to the Go original, both measured by chatbench.

``python -m loadtest.compare --scenario light|bigroom|idle|heavy|all --chatbench PATH
[--seed-go PATH] [--repeat N] [--json]``

Why: a Python generator runs out of CPU before the server does, so these
figures come from chatbench, a compiled generator (``../shared/chatbench``,
not part of this project: build it with ``go build -o /tmp/chatbench .``).
With ``--seed-go`` the same runs go against ``seed-go``, a Go re-implementation
of the design gevent-chat descends from, as a yardstick: the ratio column
(gevent/go) says how far off a figure is, whatever the machine.

Each run starts a fresh server (so no run inherits another's memory or
greenlets) pinned to CPU 0 with flood control off (it would pace the senders)
and a raised ``RLIMIT_NOFILE``; chatbench runs pinned to CPU 1.  Runs of the
two servers alternate within each repeat, so a drift in what else the machine
is doing hits both alike.  The table shows the median of the repeats, followed
by each run's value in brackets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.fanout.measure import machine_busy
from loadtest.processes import LoggedProcess

SERVER_CPU = 0
GENERATOR_CPU = 1
#: Descriptors for the servers and chatbench: up to 10,000 connections each side, and room to spare.
NOFILE = 20000
#: Seconds chatbench may take beyond its own estimate before it is killed.
RUN_SLACK = 120.0

LOAD_FIELDS = (
    "delivered_per_s",
    "delivery_ratio",
    "lat_p50_ms",
    "lat_p99_ms",
    "lat_max_ms",
    "server_cpu_pct",
    "gen_cpu_pct",
    "server_rss_kb_max",
    "other_cpu_pct",
)
#: Shown only when a run reports them non-zero: each means a broken contract.
FAULT_FIELDS = ("lost", "duplicates", "ordering_violations", "malformed_lines", "disconnected_clients")
CONNS_FIELDS = (
    "kb_per_conn",
    "connected",
    "probe_reached",
    "connect_s",
    "server_rss_kb_after_connect",
    "other_cpu_pct",
)


@dataclass(frozen=True)
class Case:
    """One chatbench command line and the result fields worth a row."""

    name: str
    flags: tuple[str, ...]
    fields: tuple[str, ...] = LOAD_FIELDS

    def seconds(self) -> float:
        """A generous bound on the run's length, from its own -duration/-warmup flags."""
        total = 0.0
        for flag in ("-duration", "-warmup"):
            if flag in self.flags:
                total += parse_seconds(self.flags[self.flags.index(flag) + 1])
        return total + RUN_SLACK


def _case(name: str, flags: str, fields: tuple[str, ...] = LOAD_FIELDS) -> Case:
    return Case(name, tuple(flags.split()), fields)


SCENARIOS: dict[str, list[Case]] = {
    "light": [_case("light", "-mode load -clients 100 -rate 3 -duration 10s -warmup 2s")],
    "bigroom": [
        _case(
            "bigroom",
            "-mode load -clients 5000 -senders 1 -rate 2 -connect-rate 3000 -duration 10s -warmup 2s",
        ),
        _case(
            "bigroom-10k",
            "-mode load -clients 10000 -senders 1 -rate 2 -connect-rate 3000 -duration 10s -warmup 2s",
        ),
    ],
    "idle": [_case("idle", "-mode conns -clients 5000 -connect-rate 2000 -duration 5s", CONNS_FIELDS)],
    "heavy": [
        _case("heavy-100x8", "-mode load -clients 100 -rate 0 -window 8 -duration 10s -warmup 2s"),
        _case(
            "heavy-500x20x8", "-mode load -clients 500 -senders 20 -rate 0 -window 8 -duration 10s -warmup 2s"
        ),
        _case("heavy-100x1", "-mode load -clients 100 -rate 0 -window 1 -duration 10s -warmup 2s"),
    ],
}


# -- pure helpers ------------------------------------------------------------------------------


def parse_seconds(text: str) -> float:
    """A Go duration of the simple kinds used here: ``10s``, ``500ms``, ``2m``."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def parse_result(stdout: str) -> dict[str, Any]:
    """chatbench's result: its last line that is a JSON object."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            result = json.loads(line)
            if isinstance(result, dict):
                return result
    raise ValueError(f"no JSON result in chatbench output: {stdout[-300:]!r}")


def median(values: Sequence[Any]) -> float | None:
    """The median of the numeric values (booleans and missing ones left out), or None."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(numbers) if numbers else None


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_ratio(ours: float | None, theirs: float | None) -> str:
    """``ours / theirs`` as ``0.42x``; ``-`` when either is missing or the divisor is 0."""
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


def cell(runs: Sequence[dict[str, Any]], field: str) -> tuple[float | None, str]:
    """The median of ``field`` over ``runs``, and its text (with every run's value when several)."""
    values = [r.get(field) for r in runs]
    mid = median(values)
    text = format_value(mid)
    if len(runs) > 1 and mid is not None:
        text += " [" + " ".join(format_value(median([v])) for v in values) + "]"
    return mid, text


def table(case: Case, results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Rows of ``field, one column per server, gevent/go`` for one case."""
    servers = list(results)
    fields = list(case.fields)
    fields += [f for f in FAULT_FIELDS if any(r.get(f) for runs in results.values() for r in runs)]
    cells = {s: {f: cell(results[s], f) for f in fields} for s in servers}
    width = max(14, *(len(t) for s in servers for _, t in cells[s].values()))
    name = max(len(f) for f in fields)
    head = f"{'field':<{name}}" + "".join(f"{s:>{width + 2}}" for s in servers)
    with_ratio = "gevent-chat" in servers and "go" in servers
    if with_ratio:
        head += f"{'gevent/go':>11}"
    lines = [f"# {case.name}: {' '.join(case.flags)}", head]
    for f in fields:
        row = f"{f:<{name}}" + "".join(f"{cells[s][f][1]:>{width + 2}}" for s in servers)
        if with_ratio:
            row += f"{format_ratio(cells['gevent-chat'][f][0], cells['go'][f][0]):>11}"
        lines.append(row)
    for s in servers:
        gen = median([r.get("gen_cpu_pct") for r in results[s]])
        if gen is not None and gen >= 90:
            lines.append(f"# {s}: chatbench at {gen:.0f}% CPU: this is the generator's limit")
        if any(r.get("server_alive") is False for r in results[s]):
            lines.append(f"# {s}: SERVER DIED during a run")
        errors = {r["error"] for r in results[s] if r.get("error")}
        lines += [f"# {s}: chatbench error: {e}" for e in sorted(errors)]
    return lines


# -- processes ---------------------------------------------------------------------------------


def _child_setup(cpu: int) -> Callable[[], None]:
    """What a child runs before exec: pin it to ``cpu`` and raise its descriptor limit."""
    pin = len(os.sched_getaffinity(0)) > 1

    def prepare() -> None:
        if pin:
            os.sched_setaffinity(0, {cpu})
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    return prepare


class Server(LoggedProcess):
    """A chat server subprocess on CPU 0; ``address`` once it says it listens."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        setup = _child_setup(SERVER_CPU)
        super().__init__(argv, "compare-server-", stdin=subprocess.DEVNULL, env=env, preexec_fn=setup)

    def wait_listening(self, timeout: float = 10.0) -> str:
        found = self.listening_on(timeout)
        if found is not None:
            return found.split()[0].decode()
        self.stop()
        raise RuntimeError(f"server did not start: {self.proc.args!r}")


def start_gevent_chat() -> Server:
    argv = [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--rate-limit", "0", "--max-clients", str(NOFILE), "--log-level", "info"]
    return Server(argv)


def start_seed_go(binary: str) -> Server:
    with socket.socket() as s:  # seed-go cannot pick a port itself: find a free one
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Server([binary, "-addr", f"127.0.0.1:{port}"], env={**os.environ, "GOMAXPROCS": "1"})


def run_case(chatbench: str, case: Case, start: Callable[[], Server]) -> dict[str, Any]:
    """One chatbench run against a fresh server; its JSON result.

    Adds ``other_cpu_pct``: what the rest of the machine used (other
    processes, the kernel) over the whole run, neither server nor chatbench.
    On a shared machine it tells a noisy run from a slow server.
    """
    server = start()
    try:
        address = server.wait_listening()
        t0, busy0, srv0 = time.monotonic(), machine_busy(), server.cpu_seconds()
        gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        argv = [chatbench, "-addr", address, "-wait-prompt", "-server-pid", str(server.pid), *case.flags]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=case.seconds(),
            preexec_fn=_child_setup(GENERATOR_CPU),
            check=False,
        )
        gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen = gen1.ru_utime + gen1.ru_stime - gen0.ru_utime - gen0.ru_stime
        srv = server.cpu_seconds() - srv0 if server.proc.poll() is None else 0.0
        other = machine_busy() - busy0 - srv - gen
        other_pct = round(max(0.0, 100 * other / (time.monotonic() - t0)), 1)
        try:
            return {**parse_result(done.stdout), "other_cpu_pct": other_pct}
        except ValueError:
            return {"error": f"exit {done.returncode}: {done.stderr.strip()[-200:]}"}
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m loadtest.compare", description=summary)
    p.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    p.add_argument("--chatbench", required=True, help="path of the chatbench binary")
    p.add_argument("--seed-go", help="path of the seed-go binary, to run the Go original alongside")
    p.add_argument("--repeat", type=int, default=1, help="runs per server and case; the table shows medians")
    p.add_argument("--json", action="store_true", help="also print every run's result as a JSON line")
    args = p.parse_args(argv)
    for path in [args.chatbench, *([args.seed_go] if args.seed_go else [])]:
        if not os.access(path, os.X_OK):
            p.error(f"not an executable: {path}")
    starters: dict[str, Callable[[], Server]] = {"gevent-chat": start_gevent_chat}
    if args.seed_go:
        seed_go = args.seed_go
        starters["go"] = lambda: start_seed_go(seed_go)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print(f"# server on CPU {SERVER_CPU}, chatbench on CPU {GENERATOR_CPU}; {args.repeat} run(s) each")
    status = 0
    for name in names:
        for case in SCENARIOS[name]:
            results: dict[str, list[dict[str, Any]]] = {s: [] for s in starters}
            for _ in range(max(1, args.repeat)):
                for server, start in starters.items():
                    result = run_case(args.chatbench, case, start)
                    results[server].append(result)
                    if args.json:
                        print(json.dumps({"case": case.name, "server": server, **result}), flush=True)
                    if result.get("error"):
                        status = 1
            print("\n".join(table(case, results)), end="\n\n", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
