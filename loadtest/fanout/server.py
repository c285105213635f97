"""The server under test: ``gevent_chat.server`` in a subprocess pinned to one core.

Pinned so the generator (on the other cores) never competes with it for CPU;
its log goes to a temp file, read for the port it listens on and for the
clients it cut as too slow.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Sequence

import gevent

from ..processes import LoggedProcess

SERVER_CORE = 0
#: Flags for every benchmark server: flood control off (it would pace the senders and
#: measure the limit, not the server) and room for every benchmark connection.
SERVER_ARGS = ["--rate-limit", "0", "--max-clients", "20000"]
#: Extra server flags from ``--server-arg`` (for example ``--outbox-size=2000``).
EXTRA_SERVER_ARGS: list[str] = []


class ServerProcess(LoggedProcess):
    """``gevent_chat.server`` in a subprocess on one core; its log goes to a temp file."""

    def __init__(self, extra_args: Sequence[str] = (), nofile: int | None = None) -> None:
        pin = _can_pin()

        def prepare() -> None:  # runs in the child, before exec
            if pin:
                os.sched_setaffinity(0, {SERVER_CORE})
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        argv = [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--log-level", "info", *SERVER_ARGS, *EXTRA_SERVER_ARGS, *extra_args]
        super().__init__(argv, "fanout-server-", preexec_fn=prepare)
        self.address = self._wait_listening(10.0)

    def _wait_listening(self, timeout: float) -> tuple[str, int]:
        found = self.listening_on(timeout, gevent.sleep)
        if found is not None:
            host, port = found.strip().decode().rsplit(":", 1)
            return host, int(port)
        log = self.log_text()  # before stop() removes it
        self.stop()
        raise RuntimeError(f"server did not start; log: {log}")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log_text(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def slow_cuts(self) -> int:
        """Clients the server cut as too slow, from its log."""
        return self.log_text().count("cut: outbox full")


def _can_pin() -> bool:
    return len(os.sched_getaffinity(0)) > 1 and SERVER_CORE in os.sched_getaffinity(0)


def pin_generator() -> None:
    if _can_pin():
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {SERVER_CORE})


def raise_nofile(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
