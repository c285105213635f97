"""Ban masks: which users a ``/ban`` (or IRC's ``+b``) names.

PURE.  Three shapes, after IRC's ``nick!user@host``:

- ``bob``: the nick ``bob`` and its look-alikes (``Bob``, ``b\u043eb``);
- ``bob*``, ``?ob``: a glob on the nick (``*`` any run, ``?`` one character);
- ``*@203.0.113.*``, ``bob!*@2001:db8::/32``: a nick glob (and, optionally,
  a user glob after ``!``) and an address glob or CIDR block after ``@``.

A nick glob is matched on ``names.name_key``, piece by piece, so a ban on
``bob*`` also holds ``B\u043eb_`` and case never matters; ``?`` is one
character of that key, in which some letters take two (``m`` is ``rn``).  A mask is checked as
typed, like a nick: a character outside the rules refuses it rather than
being cleaned into another mask.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .errors import BadMask
from .names import name_key

__all__ = ["MAX_MASK_CHARS", "Mask", "parse_mask"]

#: A nick (32) with a user, an IPv6 address and room to spare; ergo allows 200 for a whole mask.
MAX_MASK_CHARS = 100

_NICK_GLOB = re.compile(r"[\w.\-*?]+")
_HOST_GLOB = re.compile(r"[0-9A-Za-z.:\-*?]+")
_CIDR = re.compile(r"[0-9A-Fa-f.:]+/\d{1,3}")
_WILDCARDS = re.compile(r"([*?])")
_RULES = (
    "a mask is NICK, a glob such as bob* (* any run, ? one character), or NICK@ADDRESS such as "
    f"*@203.0.113.* or *@2001:db8::/32, at most {MAX_MASK_CHARS} characters"
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nick_pattern(glob: str) -> re.Pattern[str]:
    """``glob`` as a regex over name keys: each literal piece replaced by its key."""
    parts = []
    for piece in _WILDCARDS.split(glob):
        if piece == "*":
            parts.append(".*")
        elif piece == "?":
            parts.append(".")
        elif piece:
            parts.append(re.escape(name_key(piece)))
    return re.compile("".join(parts), re.DOTALL)


def _plain_pattern(glob: str) -> re.Pattern[str]:
    """``glob`` as a case-insensitive regex over plain text (addresses, user names)."""
    parts = [".*" if p == "*" else "." if p == "?" else re.escape(p) for p in _WILDCARDS.split(glob) if p]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, eq=False)
class Mask:
    """One parsed mask; equal to another mask with the same ``key``.

    ``text`` is the mask as typed (and as listed); ``key`` folds the nick part
    to its name key and the rest to lower case, so ``Bob*`` and ``bob*`` are
    one ban.
    """

    text: str
    key: str
    _nick: re.Pattern[str] = field(repr=False)
    _user: re.Pattern[str] | None = field(repr=False)
    _host: re.Pattern[str] | Network | None = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def matches(
        self, nick: str, address: str | None = None, user: str | None = None, key: str | None = None
    ) -> bool:
        """True if the user ``nick`` connected from ``address`` falls under this mask.

        ``user`` is IRC's user name; a line-protocol user has none, and their
        nick stands in.  A mask with an address never matches an unknown one.
        ``key`` is ``name_key(nick)`` if the caller has it (checking many
        masks, compute it once).
        """
        if self._nick.fullmatch(name_key(nick) if key is None else key) is None:
            return False
        if self._user is not None and self._user.fullmatch(user if user is not None else nick) is None:
            return False
        if self._host is None:
            return True
        if address is None:
            return False
        if isinstance(self._host, re.Pattern):
            return self._host.fullmatch(address) is not None
        return _in_network(address, self._host)


def _in_network(address: str, network: Network) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d
    return ip.version == network.version and ip in network


def parse_mask(raw: str) -> Mask:
    """The mask typed on ``raw`` (spaces around it ignored); raises ``BadMask``."""
    text = raw.strip(" ")
    if not text or len(text) > MAX_MASK_CHARS:
        raise BadMask(f"invalid mask: {_RULES}")
    who, at, host = text.partition("@")
    nick, bang, user = who.partition("!")
    if not _NICK_GLOB.fullmatch(nick) or (bang and not _NICK_GLOB.fullmatch(user)):
        raise BadMask(f"invalid mask: {_RULES}")
    host_match: re.Pattern[str] | Network | None = None
    if at:
        host_match = _host_match(host)
    elif bang:
        raise BadMask(f"invalid mask: {_RULES}")
    user_match = _plain_pattern(user) if bang and user.strip("*") else None
    # One key for one set of users: "bob", "Bob@*" and "bob!*@*" are one ban.
    pieces = _WILDCARDS.split(nick)
    key = "*" if not nick.strip("*") else "".join(p if p in "*?" else name_key(p) for p in pieces)
    if user_match is not None:
        key += f"!{user.casefold()}"
    if host_match is not None:
        key += f"@{_host_key(host_match)}"
    return Mask(text, key, _nick_pattern(nick), user_match, host_match)


def _host_match(host: str) -> re.Pattern[str] | Network | None:
    if _CIDR.fullmatch(host):
        try:
            return ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise BadMask(f"invalid mask: {_RULES}") from None
    if not _HOST_GLOB.fullmatch(host):
        raise BadMask(f"invalid mask: {_RULES}")
    return None if not host.strip("*") else _plain_pattern(host)


def _host_key(host: re.Pattern[str] | Network) -> str:
    if isinstance(host, re.Pattern):
        return host.pattern.lower()
    return str(host)
