"""The IRC options: parsed, checked, refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from gevent_chat.core.config import Config, is_server_name, parse_args
from gevent_chat.core.errors import ConfigError
from tests.helpers import ServerProcess


def test_irc_options_are_parsed() -> None:
    config = parse_args(
        [
            "--irc-port",
            "6667",
            "--server-name",
            "irc.example.org",
            "--irc-ping-interval",
            "30",
            "--motd-file",
            "m",
        ]
    )
    assert (config.irc_port, config.server_name, config.irc_ping_interval, config.motd_file) == (
        6667,
        "irc.example.org",
        30.0,
        "m",
    )
    assert Config().irc_port is None  # off by default


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"irc_port": 70000}, "--irc-port must be 0-65535"),
        ({"irc_tls_port": 6697}, "--irc-tls-port needs --certfile"),
        ({"irc_ping_interval": 0}, "--irc-ping-interval must be positive"),
        ({"server_name": "not a name"}, "--server-name must be a host name"),
        ({"irc_port": 8000}, "--irc-port 8000 and --port 8000 would share a port"),
    ],
)
def test_bad_irc_options_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["localhost", "My.Little.Server", "irc-1.example.org"])
def test_host_names_are_server_names(name: str) -> None:
    assert is_server_name(name)


@pytest.mark.parametrize("name", ["", "-a.b", "a..b", "a b", "a.b.", "x" * 64])
def test_other_strings_are_not(name: str) -> None:
    assert not is_server_name(name)


def test_an_unreadable_motd_file_stops_the_server_with_its_name(tmp_path: Path) -> None:
    proc = ServerProcess("--irc-port", "0", "--motd-file", str(tmp_path / "missing.txt"))
    try:
        assert proc.wait() == 1
        assert "--motd-file:" in proc.log_text()
    finally:
        proc.kill()
