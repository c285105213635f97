"""The client's pure parts: framing, classifying, colouring, backoff, nick suffixes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.client import render
from gevent_chat.client.reconnect import MAX_DELAY, alternate_nick, backoff_delay
from gevent_chat.client.render import Incoming, Kind, classify, nick_colour
from gevent_chat.core.protocol import is_valid_nick

SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    ("line", "kind", "nick", "text"),
    [
        ("*** bob joined", Kind.NOTICE, "", "bob joined"),
        ("bob: hi: there", Kind.CHAT, "bob", "hi: there"),
        ("*alice* psst", Kind.PRIVATE, "alice", "psst"),
        ("-> *bob* psst", Kind.PRIVATE_OUT, "bob", "psst"),
        ("* alice waves", Kind.ACTION, "alice", "waves"),
        ("Enter your nickname: ", Kind.PLAIN, "", "Enter your nickname: "),
        ("no colon here", Kind.PLAIN, "", "no colon here"),
    ],
)
def test_classify_tells_the_kinds_of_server_line_apart(line: str, kind: Kind, nick: str, text: str) -> None:
    got = classify(line)
    assert (got.kind, got.nick, got.text, got.stamp) == (kind, nick, text, "")


def test_history_line_keeps_its_stamp_and_inner_kind() -> None:
    got = classify("[09:05] * alice waves")
    assert (got.stamp, got.kind, got.nick) == ("[09:05] ", Kind.ACTION, "alice")


def test_nick_colour_is_stable_across_runs_and_case() -> None:
    """Python's hash() is salted per process; the colour must not be."""
    code = "from gevent_chat.client.render import nick_colour; print(nick_colour('alice'))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outs == {str(nick_colour("alice"))}
    assert nick_colour("ALICE") == nick_colour("alice")


def test_different_nicks_get_different_colours() -> None:
    colours = {nick_colour(n) for n in ("alice", "bob", "carol", "dave", "erin", "frank")}
    assert len(colours) > 1


def test_render_colours_nick_and_dims_notices() -> None:
    assert render.render("bob: hi", colour=True) == f"\x1b[{nick_colour('bob')}mbob\x1b[0m: hi"
    assert render.render("*** bob joined", colour=True).startswith(render.DIM)
    assert render.render("*alice* psst", colour=True).startswith(render.BOLD)


def test_render_without_colour_is_the_sanitised_line() -> None:
    assert render.render("\x1b]0;pwned\x07bob: \x1b[2Jhi\x07", colour=False) == "bob: hi"


@given(st.text())
def test_render_leaves_no_control_character_but_its_own_sgr(raw: str) -> None:
    for colour in (False, True):
        shown = SGR.sub("", render.render(raw, colour))
        assert not re.search(r"[\x00-\x1f\x7f-\x9f]", shown)


def test_incoming_reports_the_nickname_prompt() -> None:
    frames = Incoming()
    assert frames.feed(b"Enter your nick") == []
    assert frames.feed(b"name: ") == [(True, "Enter your nickname: ")]


def test_incoming_reports_the_password_prompt() -> None:
    frames = Incoming()
    assert frames.feed(b"Pass") == []
    assert frames.feed(b"word: ") == [(True, "Password: ")]
    assert render.is_password_prompt("Password: ")
    assert not render.is_password_prompt("Enter your nickname: ")


def test_incoming_takes_only_a_bare_password_prompt() -> None:
    """A chat line cut by TCP after ``password:`` stays a partial line."""
    frames = Incoming()
    assert frames.feed(b"bob: the wifi password: ") == []
    assert frames.feed(b"hunter2\n") == [(False, "bob: the wifi password: hunter2")]


def test_wrong_password_reply_is_recognised() -> None:
    assert render.is_wrong_password("*** wrong password")
    assert not render.is_wrong_password("bob: *** wrong password")


def test_incoming_never_takes_a_notice_for_a_prompt() -> None:
    assert Incoming().feed(b"*** invalid nickname: ") == []


@given(st.lists(st.binary(max_size=20), max_size=10), st.data())
def test_incoming_lines_do_not_depend_on_chunking(parts: list[bytes], data: st.DataObject) -> None:
    stream = b"\n".join(p.replace(b"\n", b"") for p in parts) + b"\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    whole = Incoming(limit=1000)
    chunked = Incoming(limit=1000)
    expected = [t for p, t in whole.feed(stream) if not p]
    got: list[str] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += [t for p, t in chunked.feed(stream[a:b]) if not p]
    # A prompt can only be seen at a chunk end; it is then not a line, so
    # compare on streams that hold no prompt text.
    if not any(b"nickname:" in p.lower() or b"password:" in p.lower() for p in parts):
        assert got == expected


def test_incoming_bounds_an_endless_line() -> None:
    frames = Incoming(limit=10)
    out = frames.feed(b"x" * 35)
    assert [t for _, t in out] == ["x" * 10] * 3
    assert frames.close() == "x" * 5


def test_registration_replies_are_recognised() -> None:
    assert render.welcome_nick("*** Welcome, bob! 2 users online") == "bob"
    assert render.refusal_reason("*** nickname taken: bob") == "nickname taken: bob"
    assert render.refusal_reason("bob: that is taken") is None
    assert render.renamed_to("*** you are now known as bobby") == "bobby"


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_backoff_grows_is_capped_and_jittered(rand: float) -> None:
    delays = [backoff_delay(n, rand) for n in range(40)]
    assert delays == sorted(delays)
    assert delays[-1] <= MAX_DELAY
    assert backoff_delay(3, 0.0) < backoff_delay(3, 0.999)  # the jitter spreads clients


@given(st.from_regex(r"\w[\w.\-]{0,31}", fullmatch=True), st.integers(0, 50))
def test_alternate_nicks_stay_valid(nick: str, attempt: int) -> None:
    alt = alternate_nick(nick, attempt)
    assert is_valid_nick(alt)
    assert (alt == nick) == (attempt == 0)


def test_client_core_modules_do_not_import_gevent() -> None:
    code = (
        "import sys, gevent_chat.client.render, gevent_chat.client.reconnect; print('gevent' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
