"""Server operators: the ``--opers-file`` format and its password hashes.

PURE: text in, answers out; the caller reads the file, supplies the salt
(``os.urandom``) and runs ``verify`` off the event loop (scrypt is meant to
be slow).  A hash is a PHC string, so its parameters travel with it and can
grow later without breaking old ones::

    $scrypt$v=1$ln=15,r=8,p=1$<salt, base64>$<key, base64>

scrypt (``hashlib.scrypt``, RFC 7914) with N = 2**15, r = 8, p = 1: 32 MiB
and some tens of milliseconds per guess, the parameters RFC 7914 and
OWASP's password storage sheet give for interactive logins.  An opers file
has one operator a line, ``NAME HASH``; blank lines and ``#`` comments are
ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from .errors import ConfigError
from .names import is_valid_nick, name_key

__all__ = ["SALT_BYTES", "Opers", "hash_password", "parse_opers", "verify"]

SALT_BYTES = 16
_LOG_N, _R, _P = 15, 8, 1
_KEY_BYTES = 32
_VERSION = 1
_HASH = re.compile(
    r"\$scrypt\$v=(?P<v>\d+)\$ln=(?P<ln>\d+),r=(?P<r>\d+),p=(?P<p>\d+)\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<key>[A-Za-z0-9+/]+)"
)
#: Parameters a hash may ask for: enough for years of hardware, not enough to
#: let a typo in the file take all the server's memory per ``/oper``.
_MAX_LOG_N, _MAX_R, _MAX_P = 20, 16, 4


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, size: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=2 * 128 * r * n * p + (1 << 20)
    )


def hash_password(password: str, salt: bytes) -> str:
    """The encoded hash of ``password`` with ``salt`` (``SALT_BYTES`` random bytes)."""
    key = _scrypt(password, salt, _LOG_N, _R, _P, _KEY_BYTES)
    return f"$scrypt$v={_VERSION}$ln={_LOG_N},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


@dataclass(frozen=True, slots=True)
class _Hash:
    log_n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _parse_hash(encoded: str) -> _Hash:
    """Raise ``ValueError`` unless ``encoded`` is a hash this version can check."""
    m = _HASH.fullmatch(encoded)
    if m is None or int(m["v"]) != _VERSION:
        raise ValueError("not a $scrypt$v=1$ hash (make one with --hash-password)")
    h = _Hash(int(m["ln"]), int(m["r"]), int(m["p"]), _unb64(m["salt"]), _unb64(m["key"]))
    if not (1 <= h.log_n <= _MAX_LOG_N and 1 <= h.r <= _MAX_R and 1 <= h.p <= _MAX_P):
        raise ValueError(f"scrypt parameters out of range (ln <= {_MAX_LOG_N}, r <= {_MAX_R}, p <= {_MAX_P})")
    if len(h.salt) < 8 or len(h.key) < 16:
        raise ValueError("salt or key too short")
    return h


def verify(password: str, encoded: str) -> bool:
    """True if ``password`` has the hash ``encoded`` (compared in constant time)."""
    h = _parse_hash(encoded)
    key = _scrypt(password, h.salt, h.log_n, h.r, h.p, len(h.key))
    return hmac.compare_digest(key, h.key)


class Opers:
    """The server operators: name key -> (name, hash).  Empty: nobody may ``/oper``."""

    __slots__ = ("_by_key", "_decoy")

    def __init__(self, entries: dict[str, tuple[str, str]] | None = None, decoy: str | None = None) -> None:
        self._by_key = dict(entries or {})
        #: Checked for an unknown name, so a reply takes as long whether the name exists or not.
        self._decoy = decoy or next((h for _, h in self._by_key.values()), None)

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:  # never show the hashes
        return f"Opers({len(self)} operators)"

    def authenticate(self, name: str, password: str) -> str | None:
        """The operator's name as listed if ``password`` is theirs; None otherwise (same cost)."""
        found = self._by_key.get(name_key(name)) if is_valid_nick(name) else None
        if found is None:
            if self._decoy is not None:
                verify(password, self._decoy)
            return None
        return found[0] if verify(password, found[1]) else None


def parse_opers(text: str) -> Opers:
    """The operators listed in ``text``; raises ``ConfigError`` naming the first bad line."""
    entries: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) != 2 or not is_valid_nick(words[0]):
            raise ConfigError(f"opers file line {number}: expected NAME HASH")
        name, encoded = words
        try:
            _parse_hash(encoded)
        except ValueError as err:
            raise ConfigError(f"opers file line {number}: {err}") from None
        if name_key(name) in entries:
            raise ConfigError(f"opers file line {number}: {name} is listed twice")
        entries[name_key(name)] = (name, encoded)
    return Opers(entries)
