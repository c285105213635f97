"""Server operators (``core.opers``, ``server.operators``): hashes, the opers file, --hash-password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gevent_chat.core import opers
from gevent_chat.core.errors import ConfigError

SALT = bytes(range(16))
HASH = opers.hash_password("correct horse", SALT)


def test_a_hash_is_versioned_and_checks_only_its_password() -> None:
    assert HASH.startswith("$scrypt$v=1$ln=15,r=8,p=1$")
    assert "correct horse" not in HASH
    assert opers.verify("correct horse", HASH)
    assert not opers.verify("correct hors", HASH)
    assert opers.hash_password("correct horse", bytes(16)) != HASH  # the salt counts


def test_the_opers_file_lists_names_with_hashes_and_authenticates_them() -> None:
    known = opers.parse_opers(f"# operators\n\nRoot {HASH}\n")
    assert len(known) == 1
    assert known.authenticate("root", "correct horse") == "Root"
    assert known.authenticate("Root", "wrong") is None
    assert known.authenticate("nobody", "correct horse") is None
    assert known.authenticate("not a nick", "correct horse") is None
    assert HASH not in repr(known)
    assert opers.Opers().authenticate("root", "correct horse") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("root\n", "line 1: expected NAME HASH"),
        (f"# c\nro ot {HASH}\n", "line 2: expected NAME HASH"),
        ("root plaintext\n", "line 1: not a \\$scrypt\\$v=1\\$ hash"),
        (f"root {HASH.replace('v=1', 'v=2')}\n", "not a \\$scrypt\\$v=1\\$ hash"),
        (f"root {HASH.replace('ln=15', 'ln=40')}\n", "parameters out of range"),
        (f"root {HASH}\nROOT {HASH}\n", "line 2: ROOT is listed twice"),
    ],
)
def test_a_bad_opers_file_is_refused_naming_the_line(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        opers.parse_opers(text)


def test_hash_password_reads_stdin_and_prints_a_hash_that_verifies() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gevent_chat.server", "--hash-password"],
        input="s3cret pass\n",
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    encoded = done.stdout.strip()
    assert opers.verify("s3cret pass", encoded)
    assert "s3cret" not in done.stdout + done.stderr


def test_hash_password_refuses_an_empty_password() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gevent_chat.server", "--hash-password"],
        input="\n",
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 1
    assert "the password is empty" in done.stderr
    assert done.stdout == ""


def test_the_server_refuses_to_start_with_a_bad_opers_file(tmp_path: Path) -> None:
    path = tmp_path / "opers"
    path.write_text(f"root {HASH}\nbob plaintext\n")
    done = subprocess.run(
        [sys.executable, "-m", "gevent_chat.server", "--port", "0", "--opers-file", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 2
    assert "opers file line 2: not a $scrypt$v=1$ hash" in done.stderr
