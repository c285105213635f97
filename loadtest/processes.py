"""A benchmark's server subprocess, its stderr in a temp log file.

``loadtest.compare`` and ``loadtest.fanout`` both start one this way, read
the log for the ``listening on`` line, and end it with ``stop()``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any


class LoggedProcess:
    """``argv`` in a subprocess, stdout discarded and stderr in a temp log file.

    ``popen`` goes to ``subprocess.Popen`` as it is (``stdin``, ``env``,
    ``preexec_fn``).  ``stop()`` ends the child and removes the log.
    """

    def __init__(self, argv: Sequence[str], log_prefix: str, **popen: Any) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log, **popen)
        self.pid = self.proc.pid

    def listening_on(
        self, timeout: float, sleep: Callable[[float], object] = time.sleep, marker: bytes = b"listening on "
    ) -> bytes | None:
        """What follows ``marker`` in the log, once that line is there.

        None if the child exits first or ``timeout`` passes; ``sleep`` waits
        between looks (``gevent.sleep`` in a process that runs greenlets).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log.name, "rb") as f:
                for line in f:
                    if marker in line:
                        return line.split(marker, 1)[1]
            if self.proc.poll() is not None:
                break
            sleep(0.02)
        return None

    def cpu_seconds(self) -> float:
        """User + system CPU of the child so far, from /proc."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the child has not exited within 10 s; remove the log.

        Safe to call again (a failed start stops the child, and so does the
        caller's ``finally``).
        """
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        try:
            os.unlink(self.log.name)
        except FileNotFoundError:
            pass
