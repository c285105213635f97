"""Command-line habits: ``--version``, one program name, case-insensitive ``--log-level``."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

import gevent_chat
from gevent_chat.core import version
from gevent_chat.core.config import parse_args


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=8, check=False
    )


@pytest.mark.parametrize("module", ["gevent_chat.server", "gevent_chat.client"])
def test_version_prints_the_package_version(module: str) -> None:
    result = run(module, "--version")
    assert (result.returncode, result.stdout) == (0, f"gevent-chat {version.version()}\n")


def test_version_falls_back_to_the_package_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert version.version() == gevent_chat.__version__


@pytest.mark.parametrize(
    ("module", "args", "prog"),
    [
        ("gevent_chat.server", ["--bogus"], "gevent-chat-server"),
        ("gevent_chat.server", ["--port", "-1"], "gevent-chat-server"),
        ("gevent_chat.client", ["--bogus"], "gevent-chat"),
        ("gevent_chat.client", ["--cafile", "x", "--insecure"], "gevent-chat"),
    ],
    ids=["server-usage", "server-config", "client-usage", "client-setup"],
)
def test_one_program_name_in_usage_and_errors(module: str, args: list[str], prog: str) -> None:
    """Started as ``python -m``, the programs still call themselves by their installed names."""
    result = run(module, *args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"{prog}: ")
    assert "python -m" not in result.stderr


def test_log_level_is_case_insensitive() -> None:
    assert parse_args(["--log-level", "DEBUG"]).log_level == "debug"
    assert parse_args(["--log-level", "Warning"]).log_level == "warning"
