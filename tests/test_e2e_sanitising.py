"""End-to-end: protocol point 7, decoding and sanitising what users send.

Invalid UTF-8 becomes U+FFFD, valid text passes unchanged, and terminal
escapes, C0/C1 controls, bidi and invisible characters never reach the
other users (an emoji's zero-width joiner does).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import ChatClient, pair, read_raw_line

Connect = Callable[..., ChatClient]


# -- 7. decoding and sanitising -----------------------------------------------------


def test_invalid_utf8_becomes_replacement_character(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send(b"caf\xe9 \xff\xfe ok")
    assert read_raw_line(bob) == "alice: caf\ufffd \ufffd\ufffd ok".encode()


def test_valid_utf8_passes_unchanged(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send("naïve — 字 ✓")
    assert read_raw_line(bob) == "alice: naïve — 字 ✓".encode()


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        (b"\x1b[31mred\x1b[0m", b"red"),
        (b"\x1b[2J\x1b[Hcleared", b"cleared"),
        (b"\x1b]0;pwned title\x07after osc", b"after osc"),
        (b"\x1b]2;pwned\x1b\\after st", b"after st"),
        ("\u009b31mc1 csi".encode(), b"c1 csi"),
        ("a\u0085b\u009dtitle\u009cc".encode(), b"abc"),
        (b"nul\x00 bel\x07 del\x7f bs\x08", b"nul bel del bs"),
        (b"carriage\rreturn", b"carriagereturn"),
        (b"tab\there", b"tab here"),
    ],
    ids=["csi", "clear", "osc-bel", "osc-st", "c1-csi", "c1-controls", "c0-del", "bare-cr", "tab"],
)
def test_escapes_and_controls_are_stripped_before_relay(connect: Connect, sent: bytes, seen: bytes) -> None:
    alice, bob = pair(connect)
    alice.send(sent)
    raw = read_raw_line(bob)
    assert raw == b"alice: " + seen
    text = raw.decode()
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text), raw


@pytest.mark.parametrize(
    "sent",
    ["evil\u202etxt.exe", "\u2066hidden\u2069", "forged\u2028*** bob left", "in\u200bvisible"],
    ids=["rlo", "isolate", "line-separator", "zero-width-space"],
)
def test_bidi_and_invisible_controls_do_not_reach_others(connect: Connect, sent: str) -> None:
    alice, bob = pair(connect)
    alice.send(sent)
    text = read_raw_line(bob).decode()
    assert text.startswith("alice: ")
    assert not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\u200b")


def test_emoji_sequence_keeps_its_joiner(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send("\U0001f469\u200d\U0001f4bb")
    assert read_raw_line(bob).decode() == "alice: \U0001f469\u200d\U0001f4bb"
