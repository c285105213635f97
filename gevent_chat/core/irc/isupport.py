"""RPL_ISUPPORT (005): what this server supports, as tokens.

PURE.  The limits come from the chat's own rules (``core.names``), so an
IRC client learns the same limits a line client is held to.
"""

from __future__ import annotations

from ..names import MAX_NICK_CHARS
from .message import line
from .numerics import RPL_ISUPPORT

__all__ = ["TOKENS", "TOPIC_CHARS", "isupport_lines"]

#: The longest topic kept (ergo's default ``topiclen``).
TOPIC_CHARS = 390
#: The longest away message and kick reason kept.
REASON_CHARS = 390
#: Tokens per 005 line, so one line stays under 512 bytes.
_PER_LINE = 12

TOKENS: tuple[str, ...] = (
    "AWAYLEN=390",
    "CASEMAPPING=rfc8265",
    f"CHANNELLEN={MAX_NICK_CHARS + 1}",
    "CHANLIMIT=#:",
    "CHANMODES=b,k,l,imnst",
    "CHANTYPES=#",
    f"KICKLEN={REASON_CHARS}",
    "MODES=4",
    f"NICKLEN={MAX_NICK_CHARS}",
    "PREFIX=(ov)@+",
    "TARGMAX=JOIN:,KICK:1,NAMES:1,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1",
    f"TOPICLEN={TOPIC_CHARS}",
    "UTF8ONLY",
)


def isupport_lines(server: str, nick: str, network: str) -> list[bytes]:
    """The 005 lines a client gets on registering."""
    tokens = (*TOKENS, f"NETWORK={network}")
    return [
        line(RPL_ISUPPORT, nick, *tokens[i : i + _PER_LINE], "are supported by this server", source=server)
        for i in range(0, len(tokens), _PER_LINE)
    ]
