"""End-to-end: what the server says when it cannot start, and where it says it listens.

The server runs as a child process (``ServerProcess``) and its stderr is read.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator

import pytest
from gevent import socket, subprocess

from tests.helpers import ServerProcess, free_port


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket listens on."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        yield int(taken.getsockname()[1])
    finally:
        taken.close()


def _failed_start(*args: str) -> tuple[int, list[str]]:
    """Run the server with ``args``; its exit status and its stderr lines."""
    proc = ServerProcess("--rate-limit", "0", *args)
    try:
        status = proc.wait()
    finally:
        proc.kill()
    return status, proc.log


@pytest.mark.parametrize("option", ["--port", "--web-port", "--metrics-port"])
def test_a_busy_port_is_one_line_naming_the_address_once_and_the_option(busy_port: int, option: str) -> None:
    """gevent's message carries the address too: ``cannot listen on
    0.0.0.0:8000: Address already in use: ('0.0.0.0', 8000)``, with no hint
    of what to change."""
    status, log = _failed_start(option, str(busy_port))
    assert status == 1
    errors = [line for line in log if " ERROR " in line]
    assert len(errors) == 1, log
    assert errors[0].endswith(
        f"cannot listen on 127.0.0.1:{busy_port}: Address already in use: choose another with {option}"
    )
    assert len(re.findall(str(busy_port), errors[0])) == 1
    assert "Traceback" not in "\n".join(log)


def test_a_busy_port_under_workers_is_the_same_one_line(busy_port: int) -> None:
    """The supervisor binds the port first (no worker starts); its error reads the same."""
    # A --redis-url, never reached: the supervisor binds before it starts anything.
    status, log = _failed_start(
        "--workers", "2", "--redis-url", "redis://127.0.0.1:1/0", "--port", str(busy_port)
    )
    assert status == 1
    errors = [line for line in log if " ERROR " in line]
    assert len(errors) == 1, log
    assert errors[0].endswith(
        f"cannot listen on 127.0.0.1:{busy_port}: Address already in use: choose another with --port"
    )


def test_a_web_port_equal_to_the_port_is_a_usage_error_before_listening() -> None:
    """It was found only when the second bind failed, after the chat port listened."""
    port = free_port()
    status, log = _failed_start("--port", str(port), "--web-port", str(port))
    assert status == 2
    clash = f"--web-port {port} and --port {port} would share a port: give each its own"
    assert log == [f"gevent-chat-server: {clash}"]


def _in_own_network(*args: str) -> list[str]:
    """Start the server in a network namespace of its own (``unshare -rn``), so
    that a wildcard bind reaches no real interface; its log up to the metrics line."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode:
        reason = "needs unshare -rn (util-linux, user namespaces) to bind a wildcard address in private"
        if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; GEVENT_CHAT_REQUIRE_ALL=1")
        pytest.skip(reason)
    cmd = [unshare, "-rn", sys.executable, "-m", "gevent_chat.server", "--rate-limit", "0", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log: list[str] = []
    try:
        assert proc.stderr is not None
        while not any("metrics on" in line for line in log):
            raw = proc.stderr.readline()  # within the test's timeout
            assert raw, f"the server ended; log: {log!r}"
            log.append(raw.decode().rstrip("\n"))
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    return log


@pytest.mark.parametrize(
    ("host", "loopback"), [("0.0.0.0", r"127\.0\.0\.1"), ("::", r"\[::1\]")], ids=["ipv4", "ipv6"]
)
def test_a_wildcard_bind_is_announced_as_an_address_a_browser_opens(host: str, loopback: str) -> None:
    """The log said ``browser client on http://0.0.0.0:8080/``, which no browser opens."""
    log = _in_own_network(
        "--host", host, "--port", "0", "--web-port", "0", "--metrics-host", host, "--metrics-port", "0"
    )
    text = "\n".join(log)
    assert re.search(rf"INFO metrics on http://{loopback}:\d+/metrics$", text, re.MULTILINE), text
    assert re.search(rf"INFO browser client on http://{loopback}:\d+/$", text, re.MULTILINE), text
