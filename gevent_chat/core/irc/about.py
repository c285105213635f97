"""IRC's questions about the server: LUSERS, MOTD, VERSION, TIME, INFO.

PURE.  The time shown comes from the session's clock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..effects import Effect, Send
from . import numerics as n

if TYPE_CHECKING:
    from .session import IrcSession


def lusers(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    users = s.registry.users_online()
    invisible = s.info.profiles.invisible()
    rooms = len(s.registry.rooms())
    peak = s.info.profiles.peak(users)
    return [
        s.reply(
            n.RPL_LUSERCLIENT, f"There are {users - invisible} users and {invisible} invisible on 1 servers"
        ),
        s.reply(n.RPL_LUSEROP, str(s.info.profiles.opers()), "operator(s) online"),
        s.reply(n.RPL_LUSERCHANNELS, str(rooms), "channels formed"),
        s.reply(n.RPL_LUSERME, f"I have {users} clients and 0 servers"),
        s.reply(n.RPL_LOCALUSERS, str(users), str(peak), f"Current local users {users}, max {peak}"),
        s.reply(n.RPL_GLOBALUSERS, str(users), str(peak), f"Current global users {users}, max {peak}"),
    ]


def motd(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    text = s.info.motd
    if text is None:
        return [s.reply(n.ERR_NOMOTD, "MOTD File is missing")]
    return [
        s.reply(n.RPL_MOTDSTART, f"- {s.info.name} Message of the day - "),
        *(s.reply(n.RPL_MOTD, f"- {row}") for row in text),
        s.reply(n.RPL_ENDOFMOTD, "End of /MOTD command."),
    ]


def version(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    from .isupport import isupport_lines

    assert s.nick is not None
    return [
        s.reply(n.RPL_VERSION, s.info.version, s.info.name, "gevent-chat"),
        Send(b"".join(isupport_lines(s.info.name, s.nick, s.info.network))),
    ]


def info(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    return [
        s.reply(n.RPL_INFO, f"{s.info.version}: a chat server for line clients, browsers and IRC"),
        s.reply(n.RPL_INFO, "https://github.com/progval/irctest checks its IRC side"),
        s.reply(n.RPL_ENDOFINFO, "End of /INFO list"),
    ]


def time_of_day(s: IrcSession[Any], p: list[str]) -> list[Effect]:
    now = s.info.clock()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
    return [s.reply(n.RPL_TIME, s.info.name, text)]
