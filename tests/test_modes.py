"""Mode changes (``core.modes``): IRC's syntax parsed into checked changes."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.errors import BadMask, ClientError, InvalidModeParam, NickInvalid, UnknownMode
from gevent_chat.core.modes import MAX_CHANGES, MAX_KEY_CHARS, MAX_LETTERS, Change, parse_changes


def test_letters_come_first_and_arguments_follow_in_order() -> None:
    assert parse_changes(["+mk-l+o", "secret", "bob"]) == [
        Change("+", "m"),
        Change("+", "k", "secret"),
        Change("-", "l"),
        Change("+", "o", "bob"),
    ]


def test_separate_runs_of_letters_each_take_their_arguments() -> None:
    assert parse_changes(["+l", "50", "-t", "+b", "*@10.*"]) == [
        Change("+", "l", "50"),
        Change("-", "t"),
        Change("+", "b", "*@10.*"),
    ]


def test_a_bare_plus_b_is_a_ban_listing_and_minus_k_needs_no_key() -> None:
    assert parse_changes(["+b"]) == [Change("+", "b")]
    assert parse_changes(["-k"]) == [Change("-", "k")]
    assert parse_changes(["-k", "old"]) == [Change("-", "k", "old")]


@pytest.mark.parametrize(
    ("words", "error", "text"),
    [
        (["+x"], UnknownMode, "unknown mode: x"),
        (["m"], ClientError, "starts with \\+ or -"),
        (["+k"], ClientError, "mode k needs an argument"),
        (["+o"], ClientError, "mode o needs an argument"),
        (["+l", "0"], ClientError, "invalid limit"),
        (["+l", "fifty"], ClientError, "invalid limit"),
        (["+l", "\uff15"], ClientError, "invalid limit"),  # a full-width 5 is no ASCII digit
        (["+k", "a,b"], ClientError, "invalid key"),
        (["+k", "k" * (MAX_KEY_CHARS + 1)], ClientError, "invalid key"),
        (["+k", "ke\x1by"], ClientError, "invalid key"),
        (["+o", "bad nick!"], NickInvalid, "invalid nickname"),
        (["+b", "a b"], BadMask, "invalid mask"),
        (["+" + "t" * (MAX_LETTERS + 1)], ClientError, f"at most {MAX_LETTERS} mode changes"),
        (["+" + "v" * (MAX_CHANGES + 1), *["bob"] * (MAX_CHANGES + 1)], ClientError, "with an argument"),
    ],
)
def test_a_change_outside_the_rules_is_refused(words: list[str], error: type[ClientError], text: str) -> None:
    with pytest.raises(error, match=text):
        parse_changes(words)


CHANGE = st.one_of(
    st.builds(Change, st.sampled_from("+-"), st.sampled_from("tnmis")),
    st.builds(Change, st.just("+"), st.just("k"), st.from_regex(r"[!-+\--~]{1,23}", fullmatch=True)),
    st.builds(Change, st.just("+"), st.just("l"), st.integers(1, 10**6).map(str)),
    st.builds(Change, st.just("-"), st.just("l")),
    st.builds(
        Change,
        st.sampled_from("+-"),
        st.sampled_from("ov"),
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    ),
    st.builds(
        Change,
        st.sampled_from("+-"),
        st.just("b"),
        st.sampled_from(["bob", "bob*", "*@10.0.*", "*@2001:db8::/32"]),
    ),
)


def _irc_words(changes: list[Change]) -> list[str]:
    letters, args, sign = "", [], ""
    for c in changes:
        if c.sign != sign:
            letters += c.sign
            sign = c.sign
        letters += c.letter
        if c.arg is not None:
            args.append(c.arg)
    return [letters, *args]


@given(st.lists(CHANGE, min_size=1, max_size=MAX_CHANGES))
def test_parsing_irc_words_gives_back_the_changes(changes: list[Change]) -> None:
    # A trailing -k would take no argument; the generator never makes one.
    assert parse_changes(_irc_words(changes)) == changes


@given(st.lists(st.text(alphabet=string.printable + "\x00\u0430", max_size=12), max_size=8))
def test_any_words_are_changes_or_a_clear_refusal(words: list[str]) -> None:
    try:
        changes = parse_changes(words)
    except ClientError as err:
        message = str(err)
    else:
        message = ""
    if message:
        return  # a refusal with words to show
    assert len(changes) <= MAX_LETTERS
    assert sum(c.arg is not None for c in changes) <= MAX_CHANGES
    assert all(c.sign in "+-" and c.letter in "tnmisklovb" for c in changes)


def test_an_invalid_key_or_limit_names_its_letter_and_argument() -> None:
    """IRC answers 696 ERR_INVALIDMODEPARAM with the letter and the argument refused."""
    with pytest.raises(InvalidModeParam) as caught:
        parse_changes(["+k", "two words"])
    assert (caught.value.letter, caught.value.arg) == ("k", "two words")
    with pytest.raises(InvalidModeParam) as caught:
        parse_changes(["+l", "-1"])
    assert (caught.value.letter, caught.value.arg) == ("l", "-1")
