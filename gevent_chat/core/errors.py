"""The error family of gevent-chat (PURE: no I/O, no gevent).

``ClientError`` means the peer did something wrong: the connection answers with
one ``*** `` line and, unless ``disconnect`` is set, carries on.  Any exception
that is not a ``ChatError`` is a bug in the server: it is logged with its
traceback and only the connection that hit it is closed.
"""

from __future__ import annotations

__all__ = [
    "ChatError",
    "ClientError",
    "ConfigError",
    "NickInvalid",
    "NickTaken",
]


class ChatError(Exception):
    """Root of every error gevent-chat raises on purpose."""


class ConfigError(ChatError):
    """A command-line option or environment value is out of range."""


class ClientError(ChatError):
    """The client broke a rule; ``str(err)`` is the text of the ``*** `` reply."""

    disconnect: bool = False


class NickInvalid(ClientError):
    """A nickname that does not follow the nickname rules."""


class NickTaken(ClientError):
    """A nickname already held by someone, or a look-alike of one (``names.name_key``)."""
