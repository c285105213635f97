"""The client's command line: ``python -m gevent_chat.client`` and ``gevent-chat``.

SHELL.  Parses the arguments, loads the TLS context and the password file
(one line and status 2 if either is unusable), picks the front (a terminal
or a pipe) and runs the ``Client``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from gevent import ssl

from ..core.config import password_from_file
from ..core.errors import ConfigError
from ..core.version import VersionAction
from . import tls
from .app import PROG, Client
from .fronts import EXIT_SIGINT, EXIT_USAGE, PipeFront, Stop, TerminalFront
from .tls import describe_error

__all__ = ["build_parser", "main"]


# -- command line ------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Terminal client for gevent-chat. Type a line to send it; /quit or Ctrl-D to leave.",
    )
    p.add_argument("--version", action=VersionAction, help="print the version and exit")
    p.add_argument("--host", default="127.0.0.1", help="server address (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="server port (default %(default)s)")
    p.add_argument("--nick", help="register with this nickname instead of answering the prompt")
    p.add_argument(
        "--reconnect",
        action="store_true",
        help="if the connection drops, retry with backoff and register again",
    )
    p.add_argument("--tls", action="store_true", help="connect over TLS (implied by --cafile, --insecure)")
    p.add_argument("--cafile", help="PEM file of the CA (or self-signed certificate) to trust")
    p.add_argument(
        "--insecure", action="store_true", help="TLS without checking the certificate (testing only)"
    )
    p.add_argument(
        "--password-file",
        help="file whose first line is the server password (else asked on a terminal)",
    )
    return p


def _setup(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The TLS context (or None) and the password file's password; ``Stop`` if unusable."""
    if args.cafile is not None and args.insecure:
        raise Stop(EXIT_USAGE, "--cafile and --insecure contradict each other")
    context = None
    if args.tls or args.cafile is not None or args.insecure:
        try:
            context = tls.client_context(cafile=args.cafile, insecure=args.insecure)
        except OSError as err:  # ssl.SSLError included: not a PEM certificate
            why = err.reason if isinstance(err, ssl.SSLError) else None
            raise Stop(EXIT_USAGE, f"--cafile {args.cafile}: {why or describe_error(err)}") from None
    password = None
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8", errors="surrogateescape") as f:
                password = password_from_file(f.read())
        except (OSError, ConfigError) as err:
            why = describe_error(err) if isinstance(err, OSError) else str(err)
            raise Stop(EXIT_USAGE, f"--password-file {args.password_file}: {why}") from None
    return context, password


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client; returns the exit status (see the EXIT_* constants)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    try:
        context, password = _setup(args)
    except Stop as stop:
        print(f"{PROG}: {stop.message}", file=sys.stderr, flush=True)
        return stop.code
    try:
        front = TerminalFront() if interactive else PipeFront()
        return Client(args, front, colour, context, password).run()
    except KeyboardInterrupt:  # Ctrl-C before our own handler is installed
        return EXIT_SIGINT
