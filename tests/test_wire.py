"""The messages servers exchange through Redis: round trip and validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core import wire

_text = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), max_size=40)
_lines = st.lists(_text, min_size=1)


def _entry(payload: bytes, lines: int, node: str = "node-1") -> wire.Entry:
    return wire.Entry(node, 7, 1_700_000_000_123, lines, True, payload)


@given(_lines, st.integers(1, 10**12), st.booleans())
def test_published_message_decodes_to_what_was_encoded(texts: list[str], offset: int, remember: bool) -> None:
    """A failure means a node could not read what another published."""
    payload = "".join(t + "\n" for t in texts).encode()
    entry = wire.Entry("ab12", 3, 99, len(texts), remember, payload)
    message = wire.decode_message(wire.encode_message("e9f0", offset, entry))
    assert message == wire.Message("e9f0", offset, entry)


def test_stream_entry_fields_decode_with_their_offset() -> None:
    header = wire.encode_header("n1", 5, 1234, 2, False)
    entry = wire.decode_entry({b"h": header, b"d": b"a: x\na: y\n"})
    assert (entry.node, entry.seq, entry.when, entry.lines, entry.remember) == ("n1", 5, 1.234, 2, False)
    assert wire.offset_of(b"42-0") == 42


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"gc2 e 1 n 1 1 1 1\nx\n",  # another format
        b"gc1 e 0 n 1 1 1 1\nx\n",  # offset 0
        b"gc1 e 1 n 1 1 2 1\nx\n",  # says 2 lines, has 1
        b"gc1 e 1 n 1 1 1 1\nx",  # no newline at the end
        b"gc1 e 1 n 1 1 1 2\nx\n",  # remember flag 2
        b"gc1 e 1 n -1 1 1 1\nx\n",  # negative sequence number
        b"gc1 e/x 1 n 1 1 1 1\nx\n",  # epoch with a slash
        b"gc1 e 1 n 1 1 1 1\n\x1b[2Jgotcha\n",  # an escape sequence
        b"gc1 e 1 n 1 1 1 1\n\xff\xfe\n",  # not UTF-8
        b"gc1 e 1 n 1 1 1 1\n\xc2\x9bhidden CSI\n",  # 8-bit CSI
    ],
)
def test_corrupt_or_foreign_messages_are_refused(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_message(data)


def test_entry_without_its_fields_is_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.decode_entry({b"d": b"x\n"})
    with pytest.raises(wire.WireError):
        wire.offset_of(b"42-1")


def test_clean_unicode_payload_is_accepted() -> None:
    payload = "zoë: héllo 世界\n".encode()
    assert wire.decode_message(wire.encode_message("e", 1, _entry(payload, 1))).entry.payload == payload
