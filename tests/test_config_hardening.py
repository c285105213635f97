"""Flags and environment of the protections, and the purity of their modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gevent_chat.core.config import PASSWORD_ENV, Config, parse_args, password_from_file
from gevent_chat.core.errors import ConfigError


def test_defaults_follow_the_issue() -> None:
    c = parse_args([])
    assert (c.rate_limit, c.rate_burst, c.max_clients, c.max_per_ip) == (10.0, 20, 10000, 0)
    assert (c.idle_timeout, c.max_unregistered_lines, c.metrics_host) == (0.0, 50, "127.0.0.1")
    assert c.metrics_port is None
    assert c.password is None
    assert not c.tls


def test_flags_set_every_protection() -> None:
    c = parse_args(
        [
            "--rate-limit=0",
            "--rate-burst=3",
            "--max-clients=5",
            "--max-per-ip=2",
            "--max-unregistered-lines=7",
            "--idle-timeout=30",
            "--certfile=c.pem",
            "--keyfile=k.pem",
            "--password-file=pw",
            "--password-delay=0.1",
            "--metrics-port=9100",
            "--metrics-host=::1",
        ]
    )
    assert (c.rate_limit, c.rate_burst, c.max_clients, c.max_per_ip) == (0, 3, 5, 2)
    assert (c.max_unregistered_lines, c.idle_timeout) == (7, 30)
    assert (c.certfile, c.keyfile, c.password_file, c.password_delay) == ("c.pem", "k.pem", "pw", 0.1)
    assert (c.metrics_port, c.metrics_host) == (9100, "::1")


def test_password_comes_from_the_environment_and_never_shows() -> None:
    c = parse_args([], {PASSWORD_ENV: "hunter2"})
    assert c.password == "hunter2"
    assert "hunter2" not in repr(c)


def test_password_file_wins_over_the_environment() -> None:
    c = parse_args(["--password-file=pw"], {PASSWORD_ENV: "hunter2"})
    assert c.password is None  # the shell reads the file
    assert c.password_file == "pw"


def test_password_file_first_line_is_the_password() -> None:
    assert password_from_file("open sesame\nignored\n") == "open sesame"
    with pytest.raises(ConfigError, match="empty"):
        password_from_file("\n")


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("rate_limit", -1, "--rate-limit"),
        ("rate_burst", 0, "--rate-burst"),
        ("max_clients", 0, "--max-clients"),
        ("max_per_ip", -1, "--max-per-ip"),
        ("idle_timeout", -1, "--idle-timeout"),
        ("keyfile", "k.pem", "--keyfile"),
        ("metrics_port", 70000, "--metrics-port"),
        ("password_delay", -1, "--password-delay"),
    ],
)
def test_bad_values_name_their_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        Config(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "module", ["core.flood", "core.limits", "core.gate", "core.config", "core.names", "core.version"]
)
def test_pure_modules_import_no_gevent(module: str) -> None:
    code = f"import sys, gevent_chat.{module}; sys.exit('gevent' in sys.modules or 'socket' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--web-port", "8000"], "--web-port 8000 and --port 8000 would share a port"),
        (["--metrics-port", "8000"], "--metrics-port 8000 and --port 8000 would share a port"),
        (["--web-port", "9000", "--metrics-port", "9000"], "--metrics-port 9000 and --web-port 9000"),
        (["--metrics-host", "0.0.0.0", "--host", "::1", "--metrics-port", "8000"], "--port 8000"),
        (["--workers", "3", "--metrics-port", "7999"], r"\(ports 7999-8001 for 3 workers\) and --port 8000"),
    ],
    ids=["web-and-chat", "metrics-and-chat", "metrics-and-web", "wildcard", "a-worker's-metrics"],
)
def test_ports_that_would_clash_are_refused_before_listening(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_args(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "0", "--web-port", "0", "--metrics-port", "0"],  # each picks a free one
        ["--host", "10.0.0.1", "--metrics-port", "8000"],  # metrics on 127.0.0.1: another address
        ["--workers", "3", "--metrics-port", "7997"],  # 7997-7999
    ],
    ids=["port-0", "other-address", "workers-below"],
)
def test_ports_on_other_numbers_or_addresses_are_accepted(args: list[str]) -> None:
    parse_args(args)
