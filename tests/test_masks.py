"""Ban masks (``core.masks``): shapes, look-alikes, addresses, refusals."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.errors import BadMask
from gevent_chat.core.masks import MAX_MASK_CHARS, parse_mask
from gevent_chat.core.names import name_key

ASCII_NICK = st.from_regex(r"[a-z0-9_][a-z0-9_.\-]{0,15}", fullmatch=True)


def test_a_plain_nick_mask_matches_that_nick_in_any_case_and_its_look_alikes() -> None:
    mask = parse_mask("bob")
    assert mask.matches("bob")
    assert mask.matches("BOB")
    assert mask.matches("b\u043eb")  # a Cyrillic o
    assert mask.matches("\uff42\uff4f\uff42")  # full width
    assert not mask.matches("bobby")
    assert not mask.matches("rob")


@given(ASCII_NICK, ASCII_NICK)
def test_a_plain_nick_mask_matches_exactly_the_nicks_with_its_key(a: str, b: str) -> None:
    assert parse_mask(a).matches(b) == (name_key(a) == name_key(b))


@given(ASCII_NICK, st.integers(min_value=0, max_value=16))
def test_a_prefix_glob_matches_every_nick_with_that_prefix(nick: str, cut: int) -> None:
    assert parse_mask(nick[:cut] + "*").matches(nick)
    assert parse_mask("*" + nick[cut:]).matches(nick)


def test_a_glob_matches_look_alikes_piece_by_piece() -> None:
    mask = parse_mask("bob*")
    assert mask.matches("B\u043ebby")
    assert mask.matches("bob")
    assert not mask.matches("robert")
    assert parse_mask("*bot").matches("HelperB0T")  # 0 and O share a key
    assert parse_mask("b?b").matches("bOb")
    assert not parse_mask("b?b").matches("bb")
    # ? is one character of the look-alike key, where m is r + n.
    assert parse_mask("??").matches("m")


def test_an_address_glob_matches_the_address_whatever_the_nick() -> None:
    mask = parse_mask("*@203.0.113.*")
    assert mask.matches("anyone", "203.0.113.7")
    assert not mask.matches("anyone", "203.0.114.7")
    assert not mask.matches("anyone", None)  # an address unknown is no match


def test_a_cidr_mask_matches_addresses_in_the_block_including_mapped_ipv4() -> None:
    v6 = parse_mask("*@2001:db8::/32")
    assert v6.matches("x", "2001:db8::1")
    assert not v6.matches("x", "2001:db9::1")
    v4 = parse_mask("*!*@198.51.100.0/24")
    assert v4.matches("x", "198.51.100.200")
    assert v4.matches("x", "::ffff:198.51.100.9")
    assert not v4.matches("x", "198.51.101.1")
    assert not v4.matches("x", "not-an-address")


def test_nick_user_and_address_must_all_match() -> None:
    mask = parse_mask("bob!b*@10.*")
    assert mask.matches("bob", "10.0.0.1")  # no user name: the nick stands in
    assert mask.matches("Bob", "10.0.0.1", user="bert")
    assert not mask.matches("bob", "10.0.0.1", user="alice")
    assert not mask.matches("rob", "10.0.0.1")
    assert not mask.matches("bob", "11.0.0.1")


def test_masks_naming_the_same_users_are_equal() -> None:
    assert parse_mask("bob") == parse_mask("Bob@*") == parse_mask("bob!*@*") == parse_mask("b\u043eb")
    assert parse_mask("*@10.*") == parse_mask("*!*@10.*")
    assert parse_mask("bob") != parse_mask("bob*")
    assert len({parse_mask("BOB*"), parse_mask("bob*")}) == 1


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "bob smith",
        "bob\x1b[31m",
        "bob\n",
        "a@b@c",
        "bob!x",
        "*@host/name",
        "*@10.0.0.0/99",
        "#room",
        "a,b",
    ],
)
def test_a_mask_outside_the_rules_is_refused(raw: str) -> None:
    with pytest.raises(BadMask, match="invalid mask"):
        parse_mask(raw)


def test_a_mask_over_the_length_limit_is_refused() -> None:
    parse_mask("a" * 32 + "@" + "1" * (MAX_MASK_CHARS - 33))
    with pytest.raises(BadMask):
        parse_mask("a" * 32 + "@" + "1" * (MAX_MASK_CHARS - 32))


@given(st.text(alphabet=string.printable + "\x00\x9b\u202e\u200b\u0430", max_size=60))
def test_any_text_is_a_mask_or_a_clear_refusal(raw: str) -> None:
    try:
        mask = parse_mask(raw)
    except BadMask as err:
        message = str(err)
    else:
        message = ""
    if message:
        assert message.startswith("invalid mask")
        return
    assert mask.text == raw.strip(" ")
    assert mask.text.isprintable()
    assert not set(mask.text) & {" ", "\u202e", "\u200b"}
