"""Nickname and room-name rules: syntax, normalisation, look-alike keys.

PURE: no I/O, no gevent, no socket, no clock.  The confusables data and the
script checks come from ICU (PyICU's ``SpoofChecker``), which implements
Unicode TS #39 from the Unicode data of the ICU it is built against.

A name is checked as typed (``validate_nick``), shown as typed, and is unique
under ``name_key``: the TS #39 skeleton of its NFKC, case-folded form, folded
again, so ``Bob``, full-width ``bob``, ``b\u043eb`` (a Cyrillic o) and ``b0b``
share one key.  A new name must also be ``is_single_script`` (TS #39's
"highly restrictive" level); the registry checks that after the look-alike
check, so a look-alike of a held name is refused as ``taken`` first.
"""

from __future__ import annotations

import re
import unicodedata

import icu

from .errors import ClientError, NickInvalid

__all__ = [
    "MAX_NICK_CHARS",
    "alternate_nick",
    "casefold",
    "check_new_nick",
    "check_new_room",
    "is_single_script",
    "is_valid_nick",
    "name_key",
    "validate_nick",
    "validate_room",
]

#: IRC servers allow 9 (RFC 1459) to 32 (ergo's default ``nicklen``); we take 32.
MAX_NICK_CHARS = 32

# A letter, digit or underscore first (``\w`` is exactly that in Unicode mode),
# then letters, digits, ``_``, ``-`` and ``.``.
_NICK_RE = re.compile(rf"\w[\w.\-]{{0,{MAX_NICK_CHARS - 1}}}")

_RULES = f"use 1-{MAX_NICK_CHARS} letters, digits, _ - . starting with a letter, digit or _"
_MIXED = "do not mix scripts (such as Latin and Cyrillic) in one name"

# TS #39 section 5.2, "highly restrictive": one script, or Latin with Han and
# Hiragana/Katakana, Bopomofo or Hangul; digits of one numbering system.
_CHECKER = icu.SpoofChecker()
_CHECKER.setRestrictionLevel(icu.URestrictionLevel.HIGHLY_RESTRICTIVE)
_CHECKER.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL | icu.USpoofChecks.MIXED_NUMBERS)


def casefold(name: str) -> str:
    """``name`` in NFKC, case-folded (full-width and compatibility forms unified)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def name_key(name: str) -> str:
    """The key under which a nick or room name is unique: its look-alikes share it.

    The TS #39 skeleton of ``casefold(name)``, folded again (the skeleton maps
    ``0`` to ``O`` and ``I`` to ``l``).  Only for comparing; never shown.
    """
    return casefold(str(_CHECKER.getSkeleton(0, casefold(name))))


def is_single_script(name: str) -> bool:
    """True if ``name`` keeps to one script (TS #39 "highly restrictive") and one digit set.

    Common and inherited characters (digits, ``_``, ``-``, ``.``) go with any
    script; Latin may go with Han and the Japanese kana, Bopomofo or Hangul.
    """
    return int(_CHECKER.check(casefold(name))) == 0


def is_valid_nick(nick: str) -> bool:
    """True if ``nick`` (already stripped) follows the nickname syntax."""
    return _NICK_RE.fullmatch(nick) is not None


def validate_nick(raw: str) -> str:
    """Return the nick typed on ``raw`` or raise ``NickInvalid``.

    The rules are checked on the text as typed, before any sanitising, so a
    nick with control bytes in it is refused rather than cleaned into another.
    """
    nick = raw.strip(" ")
    if not is_valid_nick(nick):
        raise NickInvalid(f"invalid nickname: {_RULES}")
    return nick


def validate_room(raw: str) -> str:
    """Return the room named on ``raw`` (a leading ``#`` is ignored) or raise.

    Room names follow the nickname rules.
    """
    name = raw.strip(" ").removeprefix("#")
    if not is_valid_nick(name):
        raise ClientError(f"invalid room name: {_RULES}")
    return name


def check_new_nick(nick: str) -> None:
    """Raise ``NickInvalid`` unless ``nick`` may be taken by a new holder (one script)."""
    if not is_single_script(nick):
        raise NickInvalid(f"invalid nickname {nick}: {_MIXED}")


def check_new_room(name: str) -> None:
    """Raise ``ClientError`` unless a room may be created as ``name`` (one script)."""
    if not is_single_script(name):
        raise ClientError(f"invalid room name {name}: {_MIXED}")


def alternate_nick(nick: str, attempt: int) -> str:
    """The nick to try on try ``attempt`` when ``nick`` is held.

    ``nick``, ``nick_``, ``nick__``, then ``nick_3``, ``nick_4``...; always
    within the nickname length limit, and valid whenever ``nick`` is.  The
    client uses it to register again; the server, to offer a user a new nick.
    """
    if attempt == 0:
        return nick
    suffix = "_" * attempt if attempt < 3 else f"_{attempt}"
    return nick[: MAX_NICK_CHARS - len(suffix)] + suffix
