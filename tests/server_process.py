"""A chat server in a subprocess, for tests that need a separate process.

Its log goes to a file, never to a pipe nobody reads (a full pipe would block
the server).  The bound address is read from the ``listening on`` line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from tests.helpers import wait_until


class ServerProcess(NamedTuple):
    proc: subprocess.Popen[bytes]
    address: tuple[str, int]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def server_process(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run ``python -m gevent_chat.server --host 127.0.0.1 --port 0 *args``; killed after."""
    log = tmp_path / f"server-{len(list(tmp_path.glob('server-*.log')))}.log"
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gevent_chat.server", "--host", "127.0.0.1", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=full_env,
        )
    try:
        found: list[re.Match[str]] = []

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
            m = re.search(r"listening on (\S+):(\d+)", log.read_text(errors="replace"))
            if m:
                found.append(m)
            return bool(found)

        wait_until(listening, timeout=10, what="the listening line")
        yield ServerProcess(proc, (found[0].group(1), int(found[0].group(2))), log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
