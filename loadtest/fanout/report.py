"""The text table: one fixed-width row per run, and the median of repeated runs."""

from __future__ import annotations

import os
import statistics
from typing import Any

COLUMNS = [
    ("scenario", "{:<14}"),
    ("clients", "{:>7}"),
    ("deliveries_per_s", "{:>11}"),
    ("p50_ms", "{:>8}"),
    ("p99_ms", "{:>8}"),
    ("max_ms", "{:>8}"),
    ("lost", "{:>6}"),
    ("dup", "{:>5}"),
    ("ooo", "{:>5}"),
    ("disconnected", "{:>5}"),
    ("server_cpu_pct", "{:>7}"),
    ("server_rss_mb", "{:>7}"),
    ("gen_cpu_pct", "{:>7}"),
    ("other_cpu_pct", "{:>7}"),
]
HEADERS = ["scenario", "clients", "deliv/s", "p50 ms", "p99 ms", "max ms", "lost", "dup", "ooo", "disc"]
HEADERS += ["srv CPU%", "srv MB", "gen CPU%", "other%"]
EXTRA = ["gen_late_p99_ms", "slow_cut_after_s", "rss_growth_mb", "per_second_rate_min", "per_second_rate_max"]
EXTRA += ["per_second_p99_ms_max", "reached", "broadcast_ms", "register_all_s", "rss_per_conn_kb", "note"]


def format_row(r: dict[str, Any]) -> str:
    cells = [fmt.format("-" if r.get(k) is None else r[k]) for k, fmt in COLUMNS]
    extra = [f"{k}={r[k]}" for k in EXTRA if r.get(k) not in (None, "")]
    if r.get("server_alive") is False:
        extra.insert(0, "SERVER DIED")
    return "  ".join(cells) + ("  " + " ".join(extra) if extra else "")


def header() -> str:
    widths = [len(fmt.format("")) for _, fmt in COLUMNS]
    cells = [f"{h:>{w}}" for h, w in zip(HEADERS, widths, strict=True)]
    cells[0] = f"{HEADERS[0]:<{widths[0]}}"
    return "  ".join(cells)


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": runs[0]["scenario"], "runs": len(runs), "median": True}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
            out[k] = statistics.median(values)
        elif k not in out:
            out[k] = v if all(r.get(k) == v for r in runs) else None
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return "unknown CPU"
