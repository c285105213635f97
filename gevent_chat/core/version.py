"""The installed version of gevent-chat, for ``--version`` (PURE).

``importlib.metadata`` is imported only when asked: it pulls in ``email``,
which imports ``socket``, and the pure core must not.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .. import __version__

__all__ = ["VersionAction", "version"]

#: The distribution name in the package metadata.
DISTRIBUTION = "gevent-chat"


def version() -> str:
    """The version in the installed package's metadata, else ``gevent_chat.__version__``."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return __version__


class VersionAction(argparse.Action):
    """``--version``: print ``gevent-chat X.Y.Z`` and exit 0, reading the metadata only then."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"{DISTRIBUTION} {version()}")  # to stdout, as argparse's own version action
        parser.exit()
