"""The registration gate: HTTP requests, the password, the pre-registration line cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.gate import PASSWORD_PROMPT, Gate, is_http_request
from gevent_chat.core.protocol import NICK_PROMPT


@pytest.mark.parametrize(
    "line",
    [
        b"GET / HTTP/1.1",
        b"POST /api HTTP/1.0",
        b"HEAD /x?y=1 HTTP/2",
        b"OPTIONS * HTTP/1.1",
        b"GET / HTTP/1.1\r",
    ],
)
def test_http_request_lines_are_recognised(line: bytes) -> None:
    assert is_http_request(line)


@pytest.mark.parametrize("line", [b"GET", b"get / http/1.1", b"alice", b"GET me a coffee", b"GET / HTTP"])
def test_chat_lines_are_not_http(line: bytes) -> None:
    assert not is_http_request(line)


def test_http_first_line_is_answered_and_closed() -> None:
    verdict = Gate().check(b"GET / HTTP/1.1")
    assert verdict.close == "http"
    assert verdict.reply == b"*** this is a chat server, not an HTTP server\n"


def test_http_request_as_a_later_line_is_just_a_bad_nick() -> None:
    gate = Gate()
    gate.check(b"bad nick!")
    assert gate.check(b"GET / HTTP/1.1").is_nick


def test_without_password_every_line_is_a_nick_attempt() -> None:
    gate = Gate()
    assert gate.opening() == NICK_PROMPT
    assert gate.check(b"alice").is_nick


def test_right_password_leads_to_the_nick_prompt() -> None:
    gate = Gate(password="s3cret")
    assert gate.opening() == PASSWORD_PROMPT
    verdict = gate.check(b"s3cret")
    assert verdict.reply == NICK_PROMPT
    assert verdict.close is None
    assert not verdict.is_nick
    assert gate.check(b"alice").is_nick


@pytest.mark.parametrize("attempt", [b"wrong", b"", b"s3cre", b"s3cret ", b"S3CRET"])
def test_wrong_password_closes_after_the_delay(attempt: bytes) -> None:
    verdict = Gate(password="s3cret", delay=1.5).check(attempt)
    assert verdict.close == "wrong_password"
    assert verdict.delay == 1.5
    assert verdict.reply == b"*** wrong password\n"


def test_password_never_appears_in_repr_or_replies() -> None:
    gate = Gate(password="hunter2")
    replies = [gate.check(b"x").reply, Gate(password="hunter2").check(b"hunter2").reply]
    assert "hunter2" not in repr(gate)
    assert all(b"hunter2" not in r for r in replies)


def test_line_cap_before_registering() -> None:
    gate = Gate(max_lines=3)
    assert all(gate.check(b"bad nick!").is_nick for _ in range(3))
    verdict = gate.check(b"alice")
    assert verdict.close == "unregistered_lines"
    assert verdict.reply.startswith(b"*** too many lines")


def test_zero_line_cap_is_unlimited() -> None:
    gate = Gate(max_lines=0)
    assert all(gate.check(b"x!").is_nick for _ in range(1000))


@given(st.binary(max_size=200))
def test_only_the_password_opens_the_gate(line: bytes) -> None:
    """A failure would mean some other input authenticates, or the right one does not."""
    gate = Gate(password="pässwörd")
    verdict = gate.check(line)
    assert (verdict.close is None) == (line == "pässwörd".encode())
