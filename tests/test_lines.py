"""The line protocol's rendering of events: exact bytes, with plain calls."""

from __future__ import annotations

import time

import pytest

from gevent_chat.core import lines
from gevent_chat.core.events import (
    Event,
    Invited,
    Joined,
    Kicked,
    Kind,
    ModeChanged,
    NickChanged,
    Parted,
    Private,
    Quit,
    Said,
    ServerNotice,
    TopicSet,
)


@pytest.mark.parametrize(
    ("event", "rendered"),
    [
        (Said("dev", "alice", (b"hi",)), b"alice: hi\n"),
        (Said("dev", "alice", (b"one", b"two")), b"alice: one\nalice: two\n"),
        (Said("dev", "alice", (b"waves",), Kind.ME), b"* alice waves\n"),
        (Said("dev", "alice", (b"psst",), Kind.NOTICE), b"-alice- psst\n"),
        (Said("dev", "ali", ("café".encode(),)), "ali: café\n".encode()),
        (Private("alice", "bob", "hi there"), b"*alice* hi there\n"),
        (Private("alice", "bob", "waves", Kind.ME), b"*alice* * alice waves\n"),
        (Private("alice", "bob", "note", Kind.NOTICE), b"-alice- note\n"),
        (Joined("lobby", "bob"), b"*** bob joined #lobby\n"),
        (Parted("lobby", "bob"), b"*** bob left #lobby\n"),
        (Parted("lobby", "bob", "lunch"), b"*** bob left #lobby (lunch)\n"),
        (Quit("bob"), b"*** bob left\n"),
        (Quit("bob", "too slow"), b"*** bob left (too slow)\n"),
        (NickChanged("bob", "rob"), b"*** bob is now known as rob\n"),
        (TopicSet("dev", "alice", "release day"), b"*** alice set the topic: release day\n"),
        (TopicSet("dev", "alice", ""), b"*** alice cleared the topic\n"),
        (
            ModeChanged("dev", "alice", (("+o", "bob"), ("+m", None), ("-v", "al"), ("+k", "s3"))),
            b"*** alice made bob an operator\n*** alice took al's voice\n"
            b"*** alice set the modes of #dev: +m +k s3\n",
        ),
        (
            ModeChanged("dev", "alice", (("-o", "bob"), ("+v", "al"), ("+b", "x*"), ("-b", "y*"))),
            b"*** alice removed bob as an operator\n*** alice gave al a voice\n"
            b"*** alice banned x*\n*** alice lifted the ban on y*\n",
        ),
        (Kicked("dev", "bob", "alice"), b"*** bob was kicked by alice\n"),
        (Kicked("dev", "bob", "alice", "spam"), b"*** bob was kicked by alice (spam)\n"),
        (Invited("dev", "bob", "alice"), b"*** alice invites you to #dev\n"),
        (ServerNotice("some lines may be missing"), b"*** some lines may be missing\n"),
    ],
)
def test_each_event_renders_as_the_line_protocol_shows_it(event: Event, rendered: bytes) -> None:
    assert lines.render(event) == rendered
    assert lines.RENDERER.render(event, 123.0) == rendered  # live lines show no time


def test_history_stamps_every_line_with_its_local_time() -> None:
    when = 1_700_000_000.0
    stamp = time.strftime("[%H:%M] ", time.localtime(when)).encode()
    data, n = lines.history(
        [(when, Said("dev", "alice", (b"one", b"two"))), (when, Said("dev", "bob", (b"waves",), Kind.ME))]
    )
    assert n == 3
    assert data == stamp + b"alice: one\n" + stamp + b"alice: two\n" + stamp + b"* bob waves\n"


def test_empty_history_is_nothing() -> None:
    assert lines.history([]) == (b"", 0)
