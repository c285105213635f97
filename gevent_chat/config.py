"""Every limit of the server in one validated, immutable value.

PURE: parses ``argv`` and an environment mapping, never ``sys.argv`` or
``os.environ`` directly, so tests build configs with plain calls.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence

from .errors import ConfigError

__all__ = ["Config", "parse_args"]

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclasses.dataclass(frozen=True)
class Config:
    """Server settings; defaults follow the protocol and the servers we learn from."""

    host: str = "0.0.0.0"
    #: The Go TCP-Chat listened on 8000; ``0`` picks a free port.
    port: int = 8000
    #: IRC allows 512 bytes a line; a chat line may carry pasted text, so 4096.
    max_line_bytes: int = 4096
    #: Messages one client may have waiting before it counts as too slow
    #: (ergo closes at its SendQ limit, 96 KiB by default).
    outbox_size: int = 1000
    #: Seconds to choose a nickname (ergo and ngircd allow about a minute).
    register_timeout: float = 60.0
    #: Seconds to flush outboxes on SIGINT/SIGTERM before closing.
    shutdown_timeout: float = 5.0
    #: Chat and /me lines each room remembers for newcomers (0: none).
    history: int = 50
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, not {self.port}")
        if self.max_line_bytes < 1:
            raise ConfigError("--max-line-bytes must be at least 1")
        if self.outbox_size < 1:
            raise ConfigError("--outbox-size must be at least 1")
        if self.register_timeout <= 0:
            raise ConfigError("--register-timeout must be positive")
        if self.shutdown_timeout < 0:
            raise ConfigError("--shutdown-timeout must not be negative")
        if self.history < 0:
            raise ConfigError("--history must not be negative")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(f"--log-level must be one of {', '.join(_LOG_LEVELS)}")


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="python -m gevent_chat.server",
        description="A line-based TCP chat server: connect with nc, telnet or gevent-chat.",
    )
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s; '::' for IPv6)")
    p.add_argument(
        "--port", type=int, default=d.port, help="TCP port (default %(default)s; 0 picks a free one)"
    )
    p.add_argument(
        "--max-line-bytes",
        type=int,
        default=d.max_line_bytes,
        help="longest accepted line (default %(default)s)",
    )
    p.add_argument(
        "--outbox-size",
        type=int,
        default=d.outbox_size,
        help="messages queued for one client before it is cut as too slow (default %(default)s)",
    )
    p.add_argument(
        "--register-timeout",
        type=float,
        default=d.register_timeout,
        help="seconds to choose a nickname (default %(default)s)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=d.shutdown_timeout,
        help="seconds to flush output on SIGTERM/SIGINT (default %(default)s)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=d.history,
        help="chat lines each room replays to newcomers, 0 to disable (default %(default)s)",
    )
    p.add_argument("--log-level", default=d.log_level, choices=_LOG_LEVELS, help="(default %(default)s)")
    return p


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Config:
    """Build a ``Config`` from command-line arguments; raises ``ConfigError``."""
    del env  # no environment settings yet
    ns = build_parser().parse_args(list(argv))
    fields = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(ns).items() if k in fields})
