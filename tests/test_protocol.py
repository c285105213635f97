"""The pure layer, tested by calling functions: framing, sanitising, nick rules, registry.

Property tests (hypothesis) state what must hold for every input; each
docstring says what a failure would mean for the server.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gevent_chat.core import protocol
from gevent_chat.core.errors import NickInvalid, NickTaken
from gevent_chat.core.protocol import LineBuffer, clean_text, sanitise, validate_nick
from gevent_chat.core.registry import Registry
from gevent_chat.core.rooms import DEFAULT_ROOM

# -- helpers -----------------------------------------------------------------------


def feed_chunks(limit: int, chunks: list[bytes]) -> list[bytes | None]:
    """Every line a fresh LineBuffer yields for ``chunks``, then ``close()``."""
    buf = LineBuffer(limit)
    out: list[bytes | None] = []
    for chunk in chunks:
        out.extend(buf.feed(chunk))
        assert len(buf._buf) <= limit + 1, "buffered more than the line limit"
    last = buf.close()
    if last is not None:
        out.append(last)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def reference_lines(limit: int, data: bytes) -> list[bytes | None]:
    """An independent model of the framing: split on LF, drop one CR, None if too long."""
    pieces = data.split(b"\n")
    last = pieces.pop()
    out: list[bytes | None] = []
    for piece in pieces:
        line = piece[:-1] if piece.endswith(b"\r") else piece
        out.append(None if len(line) > limit else line)
    if last:
        # An unterminated tail is delivered at close unless it was already too long.
        line = last[:-1] if last.endswith(b"\r") else last
        if len(last) > limit + 1 or (len(last) == limit + 1 and not last.endswith(b"\r")):
            out.append(None)
        else:
            out.append(line)
    return out


# Streams rich in the bytes that matter to framing.
stream_bytes = st.lists(
    st.sampled_from([b"a", b"b", b"\n", b"\r", b"\r\n", b"xyz", b"\xff", b" "]), max_size=60
).map(b"".join)

C0_C1_DEL = {*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)}


def has_control(text: str) -> bool:
    return any(ord(ch) in C0_C1_DEL for ch in text)


# -- LineBuffer --------------------------------------------------------------------


def test_linebuffer_splits_lf_and_crlf() -> None:
    assert feed_chunks(100, [b"one\ntwo\r\nthree\n"]) == [b"one", b"two", b"three"]


def test_linebuffer_byte_at_a_time_crlf() -> None:
    data = b"hello\r\nworld\r\n"
    assert feed_chunks(100, [data[i : i + 1] for i in range(len(data))]) == [b"hello", b"world"]


def test_linebuffer_close_returns_unterminated_last_line() -> None:
    buf = LineBuffer(10)
    assert buf.feed(b"first\nbye") == [b"first"]
    assert buf.close() == b"bye"


def test_linebuffer_close_on_empty_stream_returns_none() -> None:
    buf = LineBuffer(10)
    assert buf.feed(b"x\n") == [b"x"]
    assert buf.close() is None


def test_linebuffer_reports_overlong_line_once_then_resumes() -> None:
    buf = LineBuffer(4)
    out = buf.feed(b"abcdefgh")
    assert out == [None]
    # The rest of the long line is skipped, never reported again.
    assert buf.feed(b"ijklmnop" * 100) == []
    assert buf.feed(b"qrs\nok\n") == [b"ok"]


def test_linebuffer_line_of_exactly_limit_passes() -> None:
    assert feed_chunks(4, [b"abcd\nabcde\nab\n"]) == [b"abcd", None, b"ab"]


def test_linebuffer_line_ending_does_not_count_toward_limit() -> None:
    data = b"abcd\r\n"
    assert feed_chunks(4, [data[:5], data[5:]]) == [b"abcd"]
    assert feed_chunks(4, [data]) == [b"abcd"]


@given(limit=st.integers(1, 12), data=stream_bytes, cuts=st.lists(st.integers(0, 1000), max_size=20))
def test_linebuffer_chunking_never_changes_the_lines(limit: int, data: bytes, cuts: list[int]) -> None:
    """A failure means a line's fate depends on how TCP happened to segment it."""
    whole = feed_chunks(limit, [data])
    assert feed_chunks(limit, split_at(data, cuts)) == whole
    assert feed_chunks(limit, [data[i : i + 1] for i in range(len(data))]) == whole


@given(limit=st.integers(1, 12), data=stream_bytes)
def test_linebuffer_agrees_with_reference_model(limit: int, data: bytes) -> None:
    """A failure means lines are lost, merged, truncated or mis-flagged as too long."""
    assert feed_chunks(limit, [data]) == reference_lines(limit, data)


@given(limit=st.integers(1, 64), chunks=st.lists(st.binary(max_size=200), max_size=30))
def test_linebuffer_never_holds_more_than_limit_plus_one(limit: int, chunks: list[bytes]) -> None:
    """A failure means a client can make the server buffer an unbounded line."""
    buf = LineBuffer(limit)
    for chunk in chunks:
        for line in buf.feed(chunk):
            assert line is None or len(line) <= limit
        assert len(buf._buf) <= limit + 1


@given(limit=st.integers(2, 8), n=st.integers(1, 50), size=st.integers(1, 97))
def test_linebuffer_long_line_reported_once_in_any_chunk_size(limit: int, n: int, size: int) -> None:
    """However a long line arrives, it yields exactly one None and the next line survives."""
    data = b"x" * (limit + n) + b"\r\nok\n"
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    assert feed_chunks(limit, chunks) == [None, b"ok"]


# -- sanitise and clean_text -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[2J\x1b[Hwiped", "wiped"),
        ("\x1b[38;5;196mcolour", "colour"),
        ("\x1b]0;evil title\x07after", "after"),
        ("\x1b]2;title\x1b\\after", "after"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x9b31mc1 csi", "c1 csi"),
        ("a\x9db\x9cc", "ac"),
        ("bell\x07 del\x7f nul\x00", "bell del nul"),
        ("tab\there", "tab here"),
        ("\x1bcreset", "reset"),
        ("plain text, ünïcödé ✓", "plain text, ünïcödé ✓"),
    ],
)
def test_sanitise_strips_escapes_and_controls(raw: str, clean: str) -> None:
    assert sanitise(raw) == clean


@given(st.text())
def test_sanitise_leaves_no_control_character(text: str) -> None:
    """A failure means one user could clear, retitle or recolour another's terminal."""
    assert not has_control(sanitise(text))


@given(
    st.text(
        alphabet=st.sampled_from(["\x1b", "[", "]", "\\", "\x07", "\x9c", "\x9b", "a", "1", ";", "m", "\t"])
    )
)
def test_sanitise_escape_heavy_input_leaves_no_control(text: str) -> None:
    assert not has_control(sanitise(text))


@given(st.text())
def test_sanitise_is_idempotent(text: str) -> None:
    """A failure means relaying through two servers would show different text."""
    once = sanitise(text)
    assert sanitise(once) == once


@given(st.text(alphabet=st.characters(exclude_categories=["Cc", "Cf", "Zl", "Zp"])))
def test_sanitise_keeps_text_without_controls(text: str) -> None:
    """A do-nothing-wrong check: text with no control or format character passes unchanged."""
    assert sanitise(text) == text


#: What ``sanitise`` removes besides C0, DEL and C1 (protocol rule 6).
INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u2060\u2061\u2064\ufeff"
SEPARATORS = "\u2028\u2029"
JOINERS = "\u200c\u200d"

deceptive_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(INVISIBLE + SEPARATORS + JOINERS + "\u200e\u200f\u061c \x1b[a\u05d0")),
        st.characters(),
    )
)


@given(deceptive_text)
def test_sanitise_leaves_no_bidi_control_or_invisible(text: str) -> None:
    """A failure means one user could reorder or hide text on another's screen."""
    out = sanitise(text)
    assert not set(out) & set(INVISIBLE + SEPARATORS), repr(out)
    assert not has_control(out)


@given(deceptive_text)
def test_sanitise_with_bidi_and_joiners_is_idempotent(text: str) -> None:
    once = sanitise(text)
    assert sanitise(once) == once


@given(deceptive_text)
def test_joiners_left_by_sanitise_each_join_two_characters(text: str) -> None:
    """A failure means an invisible line could be made of joiners alone."""
    out = sanitise(text)
    for i, ch in enumerate(out):
        if ch in JOINERS:
            assert 0 < i < len(out) - 1
            for neighbour in (out[i - 1], out[i + 1]):
                assert not neighbour.isspace()
                assert neighbour not in JOINERS


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("abc\u202edcba", "abcdcba"),
        ("\u2067isolate\u2069", "isolate"),
        ("line\u2028forged", "line forged"),
        ("para\u2029graph", "para graph"),
        ("zero\u200bwidth\ufeff\u2060", "zerowidth"),
        ("\U0001f469\u200d\U0001f4bb", "\U0001f469\u200d\U0001f4bb"),  # woman technologist
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),  # ZWNJ
        ("\u200d\u200d\u200d", ""),
        ("\u05e9\u05dc\u05d5\u05dd\u200f!", "\u05e9\u05dc\u05d5\u05dd\u200f!"),  # RLM kept
    ],
    ids=[
        "rlo",
        "isolate",
        "line-sep",
        "para-sep",
        "zero-width",
        "emoji-zwj",
        "persian-zwnj",
        "lone-zwj",
        "rlm",
    ],
)
def test_sanitise_strips_bidi_and_invisible_controls(raw: str, clean: str) -> None:
    assert sanitise(raw) == clean


@given(st.binary())
def test_clean_text_never_raises_and_emits_no_control(raw: bytes) -> None:
    """A failure means one bad byte from a client could kill its connection greenlet."""
    out = clean_text(raw)
    assert isinstance(out, str)
    assert not has_control(out)


def test_clean_text_replaces_invalid_utf8() -> None:
    assert clean_text(b"caf\xe9 \xff!") == "caf\ufffd \ufffd!"


@given(st.binary())
def test_is_clean_ascii_means_relayable_as_is(raw: bytes) -> None:
    """The fast path must only skip sanitising when sanitising would change nothing."""
    line = raw.replace(b"\n", b"")
    if protocol.is_clean_ascii(line):
        assert clean_text(line).encode() == line


# -- nick rules --------------------------------------------------------------------


def oracle_nick_ok(nick: str) -> bool:
    """The nickname rules, written out character by character."""
    if not 1 <= len(nick) <= protocol.MAX_NICK_CHARS:
        return False
    first, rest = nick[0], nick[1:]
    if not (first.isalnum() or first == "_"):
        return False
    return all(ch.isalnum() or ch in "_-." for ch in rest)


nick_alphabet = st.one_of(
    st.sampled_from(list("aZ9_-. \x1b\x00\x7f\x9b[é字١")),
    st.characters(),
)


@given(st.text(alphabet=nick_alphabet, max_size=40))
def test_validate_nick_agrees_with_oracle(raw: str) -> None:
    """A failure means the server accepts a nick the rules forbid, or refuses a legal one."""
    expected = oracle_nick_ok(raw.strip(" "))
    try:
        got = validate_nick(raw)
    except NickInvalid:
        assert not expected, f"refused valid nick {raw!r}"
    else:
        assert expected, f"accepted invalid nick {raw!r}"
        assert got == raw.strip(" ")


@pytest.mark.parametrize(
    "raw",
    [
        "\x1b[31mbob",
        "bob\x1b[0m",
        "bo\x00b",
        "bob\x7f",
        "bo\x9bb",
        "\tbob",
        "bob\r",
        "-bob",
        ".bob",
        "",
        "a" * 33,
    ],
)
def test_validate_nick_refuses_rather_than_cleans(raw: str) -> None:
    with pytest.raises(NickInvalid, match="invalid"):
        validate_nick(raw)


@pytest.mark.parametrize("raw", ["bob", "_bob", "b-o.b_1", "9lives", "Zoë", "字", "a" * 32, "  bob  "])
def test_validate_nick_accepts_legal_nicks(raw: str) -> None:
    assert validate_nick(raw) == raw.strip(" ")


@given(st.text(max_size=3).filter(lambda s: any(unicodedata.category(c) == "Cc" for c in s)))
def test_nick_with_any_control_char_is_invalid(ctrl: str) -> None:
    with pytest.raises(NickInvalid):
        validate_nick("ab" + ctrl + "cd")


# -- registry: a state machine against a plain-dict model --------------------------


class Member:
    """A stand-in for a connection: registry members are compared by identity."""

    def __init__(self, nick: str) -> None:
        self.nick = nick


nicks = st.text(alphabet=st.sampled_from(list("aAsSß_")), min_size=1, max_size=2)
room_names = st.sampled_from([DEFAULT_ROOM, "Lobby", "dev", "DEV", "ops"])


class RegistryMachine(RuleBasedStateMachine):
    """Drive ``Registry`` with random add/remove/rename/move and compare with dicts.

    Nicks come from a tiny alphabet (with ``ß``, which folds to ``ss``) so that
    collisions by case folding happen often.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reg: Registry[Member] = Registry(contextlib.nullcontext())
        self.model: dict[str, tuple[Member, str]] = {}  # folded nick -> (member, folded room)

    @rule(nick=nicks, room=room_names)
    def add(self, nick: str, room: str) -> None:
        member = Member(nick)
        if nick.casefold() in self.model:
            with pytest.raises(NickTaken):
                self.reg.add(nick, member, room)
            return
        joined = self.reg.add(nick, member, room)
        assert joined is not None
        assert member in joined.members
        self.model[nick.casefold()] = (member, room.casefold())

    @rule(nick=nicks)
    def remove(self, nick: str) -> None:
        rooms = self.reg.remove(nick)
        entry = self.model.pop(nick.casefold(), None)
        if entry is None:
            assert rooms is None
        else:
            assert rooms is not None
            assert len(rooms) == 1
            assert entry[0] not in rooms[0].members

    @rule(old=nicks, new=nicks)
    def rename(self, old: str, new: str) -> None:
        okey, nkey = old.casefold(), new.casefold()
        if okey not in self.model:
            return
        if nkey in self.model and nkey != okey:
            with pytest.raises(NickTaken):
                self.reg.rename(old, new)
            return
        self.reg.rename(old, new)
        self.model[nkey] = self.model.pop(okey)
        assert self.reg.nick_of(new) == new

    @rule(nick=nicks, room=room_names)
    def move(self, nick: str, room: str) -> None:
        key = nick.casefold()
        if key not in self.model:
            return
        member, _ = self.model[key]
        old, new = self.reg.move(nick, room)
        assert member not in old.members or old is new
        assert member in new.members
        self.model[key] = (member, room.casefold())

    @invariant()
    def nicks_match_model(self) -> None:
        assert len(self.reg) == len(self.model)
        assert {id(m) for m in self.reg} == {id(m) for m, _ in self.model.values()}
        for key, (member, room) in self.model.items():
            assert self.reg.get(key.upper()) is member
            held = self.reg.nick_of(key)
            assert held is not None
            assert held.casefold() == key
            assert self.reg.room_of(key).name.casefold() == room

    @invariant()
    def rooms_hold_exactly_registered_members(self) -> None:
        registered_ids = {id(m) for m, _ in self.model.values()}
        expected: dict[str, set[int]] = {}
        for member, room_key in self.model.values():
            expected.setdefault(room_key, set()).add(id(member))
        seen: dict[str, set[int]] = {}
        for room in self.reg.rooms():
            assert room.members, f"empty room {room.name!r} kept"
            ids = [id(m) for m in room.members]
            assert len(ids) == len(set(ids)), "a member appears twice in one room"
            assert set(ids) <= registered_ids, "a room holds an unregistered member"
            assert room.name.casefold() not in seen, "two rooms with the same folded name"
            seen[room.name.casefold()] = set(ids)
        assert seen == expected


RegistryMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestRegistry = RegistryMachine.TestCase


# -- purity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module", ["core.protocol", "core.errors", "core.config", "core.registry", "core.rooms", "core.names"]
)
def test_pure_module_does_not_import_gevent(module: str) -> None:
    """A failure means the core depends on the shell and can no longer be tested by calls."""
    code = f"import sys, gevent_chat.{module}; print('gevent' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=8, check=True
    )
    assert result.stdout.strip() == "False", f"gevent_chat.{module} imports gevent"
