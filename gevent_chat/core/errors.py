"""The error family of gevent-chat (PURE: no I/O, no gevent).

``ClientError`` means the peer did something wrong: the connection answers with
one ``*** `` line and, unless ``disconnect`` is set, carries on.  Any exception
that is not a ``ChatError`` is a bug in the server: it is logged with its
traceback and only the connection that hit it is closed.
"""

from __future__ import annotations

__all__ = [
    "BadKey",
    "BadMask",
    "BanListFull",
    "Banned",
    "CannotJoin",
    "CannotSend",
    "ChatError",
    "ClientError",
    "ConfigError",
    "InvalidModeParam",
    "InviteOnly",
    "Moderated",
    "NickInvalid",
    "NickTaken",
    "NoSuchNick",
    "NoSuchRoom",
    "NotInRoom",
    "NotOperator",
    "NotServerOperator",
    "OperFailed",
    "RoomFull",
    "RoomRefusal",
    "ServerBanned",
    "TooManyRooms",
    "UnknownMode",
    "UserNotInRoom",
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


# -- the room rules' refusals (``core.roomstate``, ``core.modes``) -------------------
# Each carries what a transport needs to answer in its own words: the line
# protocol shows ``str(err)``; IRC picks its numeric from the class (noted
# on each) and its parameters from the attributes.


class RoomRefusal(ClientError):
    """A room's rules refused something; ``room`` is the room's name (without ``#``)."""

    def __init__(self, room: str, text: str) -> None:
        super().__init__(text)
        self.room = room


class NotOperator(RoomRefusal):
    """Only an operator of the room may do that (IRC 482 ERR_CHANOPRIVSNEEDED)."""

    def __init__(self, room: str) -> None:
        super().__init__(room, f"you are not an operator of #{room}")


class UserNotInRoom(RoomRefusal):
    """The target ``nick`` is not in the room (IRC 441 ERR_USERNOTINCHANNEL)."""

    def __init__(self, nick: str, room: str) -> None:
        super().__init__(room, f"{nick} is not in #{room}")
        self.nick = nick


class Banned(CannotJoin):
    """A ban mask of the room matches the user (IRC 474 ERR_BANNEDFROMCHAN)."""

    def __init__(self, room: str) -> None:
        super().__init__(room, "banned", "you are banned")


class InviteOnly(CannotJoin):
    """The room is ``+i`` and the user was not invited (IRC 473 ERR_INVITEONLYCHAN)."""

    def __init__(self, room: str) -> None:
        super().__init__(room, "invite", "invite only")


class BadKey(CannotJoin):
    """The room is ``+k`` and the key given is missing or wrong (IRC 475 ERR_BADCHANNELKEY)."""

    def __init__(self, room: str) -> None:
        super().__init__(room, "key", "bad key")


class RoomFull(CannotJoin):
    """The room is ``+l`` and at its limit (IRC 471 ERR_CHANNELISFULL)."""

    def __init__(self, room: str) -> None:
        super().__init__(room, "full", "room is full")


class Moderated(CannotSend):
    """The room is ``+m`` and the user has no voice (IRC 404 ERR_CANNOTSENDTOCHAN, ``why`` "moderated")."""

    def __init__(self, room: str) -> None:
        super().__init__(room, "moderated")
        self.args = (f"#{room} is moderated: you cannot speak",)


class BanListFull(RoomRefusal):
    """The room holds as many bans as allowed (IRC 478 ERR_BANLISTFULL); ``mask`` was not added."""

    def __init__(self, room: str, mask: str, limit: int) -> None:
        super().__init__(room, f"cannot ban {mask}: #{room} already has {limit} bans")
        self.mask = mask


class UnknownMode(ClientError):
    """A mode letter the server does not know (IRC 472 ERR_UNKNOWNMODE); ``letter`` is it."""

    def __init__(self, letter: str) -> None:
        super().__init__(f"unknown mode: {letter} (modes: +tnmis, +k KEY, +l N, +o NICK, +v NICK, +b MASK)")
        self.letter = letter


class InvalidModeParam(ClientError):
    """A mode's argument is not valid for it, such as a key with a space (IRC 696 ERR_INVALIDMODEPARAM)."""

    def __init__(self, letter: str, arg: str, text: str) -> None:
        super().__init__(text)
        self.letter = letter
        self.arg = arg


class BadMask(ClientError):
    """A ban mask that does not follow the mask rules (IRC has no numeric; 415-style text)."""


class NotServerOperator(ClientError):
    """Only a server operator may do that (IRC 481 ERR_NOPRIVILEGES)."""

    def __init__(self) -> None:
        super().__init__("you are not a server operator")


class OperFailed(ClientError):
    """``/oper`` with an unknown name or a wrong password (IRC 464 ERR_PASSWDMISMATCH).

    One text for both, so the reply does not tell which names exist.
    """

    def __init__(self) -> None:
        super().__init__("wrong operator name or password")


class ServerBanned(ClientError):
    """A server-wide ban matches the user (IRC 465 ERR_YOUREBANNEDCREEP): they are disconnected."""

    disconnect = True

    def __init__(self, reason: str | None = None) -> None:
        super().__init__("you are banned from this server" + (f" ({reason})" if reason else ""))
        self.reason = reason
