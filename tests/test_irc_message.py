"""core.irc.message: guarded parsing and formatting of IRC lines."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.irc.message import MAX_BODY_BYTES, MAX_TAG_BYTES, InputTooLong, escape_tag, line, parse

# A middle parameter: no space, no NUL/CR/LF, not starting with ":".
middle = st.text(
    st.characters(blacklist_characters=" \x00\r\n", blacklist_categories=["Cs"]), min_size=1, max_size=20
).filter(lambda s: not s.startswith(":"))
trailing = st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=["Cs"]), max_size=80)
command = st.from_regex(r"[A-Z]{1,10}|[0-9]{3}", fullmatch=True)


@pytest.mark.parametrize(
    "raw", [b"", b" ", b"   ", b"@a", b"@a=b ", b":src", b":src ", b"@a :src", b"\x00PRIVMSG"]
)
def test_lines_with_no_command_parse_to_nothing(raw: bytes) -> None:
    """irctokens raises on these; a crash here would drop the client's connection."""
    assert parse(raw) is None


@given(command, st.lists(middle, max_size=5), trailing)
def test_formatted_line_parses_back_to_its_fields(cmd: str, params: list[str], last: str) -> None:
    """Round trip: what ``line`` writes, ``parse`` reads back unchanged."""
    raw = line(cmd, *params, last, source="srv")
    assert raw.endswith(b"\r\n")
    parsed = parse(raw[:-2])
    assert parsed is not None
    assert (parsed.source, parsed.command, parsed.params) == ("srv", cmd, [*params, last])


@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40))
def test_escaped_tag_values_parse_back(value: str) -> None:
    """A tag value with ; space \\ CR LF survives escaping and irctokens' unescaping."""
    parsed = parse(f"@k={escape_tag(value)} PING x".encode())
    assert parsed is not None
    assert parsed.tags == {"k": value}


def test_body_over_510_bytes_is_refused() -> None:
    parse(b"PRIVMSG #a :" + b"x" * (MAX_BODY_BYTES - 12))
    with pytest.raises(InputTooLong):
        parse(b"PRIVMSG #a :" + b"x" * (MAX_BODY_BYTES - 11))


def test_tags_past_their_limit_are_refused_before_unescaping() -> None:
    """A 100 KB tag would take irctokens most of a second; it must be refused at once."""
    started = time.perf_counter()
    with pytest.raises(InputTooLong):
        parse(b"@k=" + b"\\s" * 50_000 + b" PING x")
    assert time.perf_counter() - started < 0.05
    assert parse(b"@k=" + b"v" * (MAX_TAG_BYTES - 2) + b" PING x") is not None
    with pytest.raises(InputTooLong):
        parse(b"@k=" + b"v" * (MAX_TAG_BYTES - 1) + b" PING x")


def test_invalid_utf8_becomes_replacement_characters() -> None:
    parsed = parse(b"PRIVMSG #a :caf\xe9")
    assert parsed is not None
    assert parsed.params == ["#a", "caf\ufffd"]


def test_last_parameter_gets_a_colon_only_when_it_must() -> None:
    assert line("PRIVMSG", "#a", "hi") == b"PRIVMSG #a hi\r\n"
    assert line("PRIVMSG", "#a", "hi there") == b"PRIVMSG #a :hi there\r\n"
    assert line("PRIVMSG", "#a", ":)") == b"PRIVMSG #a ::)\r\n"
    assert line("TOPIC", "#a", "") == b"TOPIC #a :\r\n"
    assert line("PING", "x", tags="time=1", source="s") == b"@time=1 :s PING x\r\n"


def test_a_middle_parameter_that_would_break_the_line_is_a_star() -> None:
    assert line("696", "al", "#a", "k", "two words", "bad key") == b"696 al #a k * :bad key\r\n"
    assert line("696", "al", "", ":x", "end") == b"696 al * * end\r\n"
