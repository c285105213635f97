"""The error family of gevent-chat (PURE: no I/O, no gevent).

``ClientError`` means the peer did something wrong: the connection answers with
one ``*** `` line and, unless ``disconnect`` is set, carries on.  Any exception
that is not a ``ChatError`` is a bug in the server: it is logged with its
traceback and only the connection that hit it is closed.
"""

from __future__ import annotations

__all__ = [
    "CannotJoin",
    "CannotSend",
    "ChatError",
    "ClientError",
    "ConfigError",
    "NickInvalid",
    "NickTaken",
    "NoSuchNick",
    "NoSuchRoom",
    "NotInRoom",
    "TooManyRooms",
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


class NoSuchNick(ClientError):
    """No user goes by ``nick`` (IRC's ERR_NOSUCHNICK)."""

    def __init__(self, nick: str) -> None:
        super().__init__(f"no such user: {nick}")
        self.nick = nick


class NoSuchRoom(ClientError):
    """No room is called ``room`` (IRC's ERR_NOSUCHCHANNEL)."""

    def __init__(self, room: str) -> None:
        super().__init__(f"no such room: #{room}")
        self.room = room


class NotInRoom(ClientError):
    """The caller is not in ``room`` (IRC's ERR_NOTONCHANNEL)."""

    def __init__(self, room: str) -> None:
        super().__init__(f"you are not in #{room}")
        self.room = room


class TooManyRooms(ClientError):
    """Joining ``room`` would pass the rooms-per-user limit (IRC's ERR_TOOMANYCHANNELS)."""

    def __init__(self, room: str, limit: int) -> None:
        super().__init__(f"cannot join #{room}: you are in too many rooms (limit {limit})")
        self.room = room
        self.limit = limit


class CannotJoin(ClientError):
    """A room's rules refuse the caller (key, ban, invite-only, full); ``why`` names the rule.

    ``why`` is one of ``key``, ``banned``, ``invite``, ``full`` (IRC's
    ERR_BADCHANNELKEY, ERR_BANNEDFROMCHAN, ERR_INVITEONLYCHAN, ERR_CHANNELISFULL).
    """

    def __init__(self, room: str, why: str, text: str) -> None:
        super().__init__(f"cannot join #{room}: {text}")
        self.room = room
        self.why = why


class CannotSend(ClientError):
    """The caller may not speak in ``room`` now; ``why`` says why (IRC's ERR_CANNOTSENDTOCHAN)."""

    def __init__(self, room: str, why: str) -> None:
        super().__init__(f"cannot send to #{room}: {why}")
        self.room = room
        self.why = why
