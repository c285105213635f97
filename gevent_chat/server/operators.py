"""Server operators, the shell side: read ``--opers-file``, make a hash, check ``/oper`` off the loop.

SHELL.  The format and the checks are ``core.opers``; here are the file, the
terminal, the random salt, and gevent's thread pool, which runs scrypt (tens
of milliseconds and 32 MiB by design) so no other connection waits on it.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

import gevent

from ..core import opers
from ..core.config import Config
from ..core.errors import ConfigError

__all__ = ["authenticate", "hash_password_command", "load_opers"]


def load_opers(config: Config) -> opers.Opers:
    """The operators of ``--opers-file`` (none without it); raises ``ConfigError``."""
    if config.opers_file is None:
        return opers.Opers()
    try:
        text = Path(config.opers_file).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--opers-file: {err.strerror or err}") from err
    return opers.parse_opers(text)


def authenticate(known: opers.Opers, name: str, password: str) -> str | None:
    """``known.authenticate`` in a worker thread: the hub keeps serving meanwhile."""
    result: str | None = gevent.get_hub().threadpool.apply(known.authenticate, (name, password))
    return result


def hash_password_command(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """``--hash-password``: read a password, print its hash; the exit status.

    From a terminal the password is asked twice without echo; from a pipe
    it is the first line of standard input.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        print("the password is empty", file=sys.stderr)
        return 1
    print(opers.hash_password(password, os.urandom(opers.SALT_BYTES)), file=stdout)
    return 0
