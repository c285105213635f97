"""Room modes: parse a mode change such as ``+mk-l secret`` into checked changes.

PURE.  The letters are IRC's, so the line protocol's ``/mode`` and IRC's
``MODE`` share one parser and one set of rules (``core.roomstate`` applies
them):

=====  ==========================================================  =========
``t``  only operators set the topic (on by default)                 flag
``n``  no lines from outside the room (on by default)               flag
``m``  moderated: only operators and voiced members speak            flag
``i``  invite only                                                    flag
``s``  secret: left out of ``/rooms`` for those not in it            flag
``k``  a key is needed to join                                       ``+k KEY``, ``-k [KEY]``
``l``  at most N members                                             ``+l N``, ``-l``
``o``  operator                                                      ``±o NICK``
``v``  voice                                                         ``±v NICK``
``b``  ban mask (``+b`` alone lists the bans)                        ``±b MASK``
=====  ==========================================================  =========

As on IRC, the mode letters come first and their arguments follow in order
(``+kl secret 50``); ``-k`` takes an argument if one is left.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ClientError, InvalidModeParam, UnknownMode
from .masks import parse_mask
from .names import validate_nick

__all__ = [
    "DEFAULT_FLAGS",
    "FLAGS",
    "MAX_CHANGES",
    "MAX_KEY_CHARS",
    "MAX_LETTERS",
    "MAX_LIMIT",
    "Change",
    "parse_changes",
]

#: Modes that are on or off and take no argument.
FLAGS = "tnmis"
#: A new room's flags: ``+nt``, as ergo and most IRC servers create rooms.
DEFAULT_FLAGS = frozenset("tn")
#: Changes with an argument in one command, IRC's ``MODES=`` (ergo 6, ngIRCd 5, ours 4); more are refused.
MAX_CHANGES = 4
#: Mode letters in one command, flags included, so a line of ``+mmmm...`` costs little.
MAX_LETTERS = 16
#: IRC's ``KEYLEN`` (ergo and ngIRCd use 23).
MAX_KEY_CHARS = 23
#: The largest ``+l``; the server's own ``--max-clients`` bounds a room anyway.
MAX_LIMIT = 1_000_000

# A key is printable and has no space or comma (IRC separates keys with commas).
_KEY = re.compile(rf"[!-+\--~]{{1,{MAX_KEY_CHARS}}}")


@dataclass(frozen=True, slots=True)
class Change:
    """One mode change: ``sign`` ``+`` or ``-``, an IRC ``letter``, its checked argument.

    ``arg`` is a nick for ``o``/``v``, a mask's text for ``b``, the key for
    ``k``, the limit in digits for ``l``; None for a flag, ``-l``, a bare
    ``-k``, and a bare ``+b`` (a request to list the bans).
    """

    sign: str
    letter: str
    arg: str | None = None

    def __str__(self) -> str:
        return f"{self.sign}{self.letter}" + (f" {self.arg}" if self.arg is not None else "")


def parse_changes(words: Sequence[str]) -> list[Change]:
    """The changes in ``words`` (``["+mk-l", "secret"]``), checked; raises ``ClientError``.

    Refuses an unknown letter (``UnknownMode``), a missing argument, a bad
    key, limit, nick or mask (``BadMask``), more than ``MAX_CHANGES`` with
    an argument and more than ``MAX_LETTERS`` in all.
    Words left over after every letter has its argument start another run
    of letters (``+m +k key``), as IRC clients send them.
    """
    queue = list(words)
    changes: list[Change] = []
    while queue:
        letters = queue.pop(0)
        if letters[:1] not in ("+", "-"):
            raise ClientError(f"a mode change starts with + or -, not {letters[:20]!r}")
        sign = "+"
        for letter in letters:
            if letter in "+-":
                sign = letter
                continue
            changes.append(_change(sign, letter, queue))
            if len(changes) > MAX_LETTERS:
                raise ClientError(f"at most {MAX_LETTERS} mode changes at once")
    if sum(c.arg is not None for c in changes) > MAX_CHANGES:
        raise ClientError(f"at most {MAX_CHANGES} mode changes with an argument at once")
    return changes


def _change(sign: str, letter: str, queue: list[str]) -> Change:
    """One letter with its argument (taken from ``queue``), checked."""
    if letter in FLAGS:
        return Change(sign, letter)
    if letter == "l":
        if sign == "-":
            return Change(sign, letter)
        return Change(sign, letter, _limit(_argument(letter, queue)))
    if letter == "k":
        if sign == "-":
            return Change(sign, letter, queue.pop(0) if queue else None)
        return Change(sign, letter, _key(_argument(letter, queue)))
    if letter in "ov":
        return Change(sign, letter, validate_nick(_argument(letter, queue)))
    if letter == "b":
        if sign == "+" and not queue:
            return Change(sign, letter)  # a listing, as IRC's bare "MODE #room +b"
        return Change(sign, letter, parse_mask(_argument(letter, queue)).text)
    raise UnknownMode(letter if letter.isprintable() else repr(letter))


def _argument(letter: str, queue: list[str]) -> str:
    if not queue:
        raise ClientError(f"mode {letter} needs an argument")
    return queue.pop(0)


def _limit(word: str) -> str:
    if not word.isascii() or not word.isdigit() or not 1 <= int(word) <= MAX_LIMIT:
        raise InvalidModeParam("l", word, f"invalid limit: use a whole number from 1 to {MAX_LIMIT}")
    return str(int(word))


def _key(word: str) -> str:
    if _KEY.fullmatch(word) is None:
        text = f"invalid key: use 1-{MAX_KEY_CHARS} printable characters, no space or comma"
        raise InvalidModeParam("k", word, text)
    return word
