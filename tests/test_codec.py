"""The bus's encoding of events: round trips, and junk refused with ``CodecError``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core import codec
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
from gevent_chat.core.protocol import sanitise

names = st.from_regex(r"\A\w[\w.\-]{0,31}\Z", fullmatch=True).filter(lambda n: "\n" not in n)
texts = st.text(max_size=40).map(sanitise).filter(lambda t: "\n" not in t)
reasons = st.none() | texts
kinds = st.sampled_from(list(Kind))
lines_ = st.lists(texts.map(str.encode), min_size=1, max_size=5).map(tuple)
changes = st.lists(
    st.tuples(st.from_regex(r"\A[+-][A-Za-z]\Z", fullmatch=True), st.none() | texts), min_size=1, max_size=4
).map(tuple)

events = st.one_of(
    st.builds(Said, names, names, lines_, kinds),
    st.builds(Private, names, names, texts, kinds),
    st.builds(Joined, names, names),
    st.builds(Parted, names, names, reasons),
    st.builds(Quit, names, reasons),
    st.builds(NickChanged, names, names),
    st.builds(TopicSet, names, names, texts),
    st.builds(ModeChanged, names, names, changes),
    st.builds(Kicked, names, names, names, reasons),
    st.builds(Invited, names, names, names),
    st.builds(ServerNotice, texts),
)


@given(event=events, rooms=st.lists(names, min_size=1, max_size=3))
def test_every_event_survives_the_bus(event: Event, rooms: list[str]) -> None:
    listed = rooms if isinstance(event, Quit | NickChanged) else []
    data = codec.encode(event, listed)
    assert data.endswith(b"\n")
    assert codec.line_count(data) == data.count(b"\n")
    assert codec.decode(data) == (event, tuple(listed))


def test_a_chat_batch_is_a_header_and_its_lines() -> None:
    data = codec.encode(Said("dev", "alice", (b"one", b"two"), Kind.ME))
    assert data == b"ev1 said me dev alice\none\ntwo\n"
    assert codec.line_count(data) == 3


def test_a_private_message_is_one_line() -> None:
    assert codec.encode(Private("alice", "bob", "hi  there")) == b"ev1 msg say alice bob hi  there\n"


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"ev1 said say dev alice\nno newline at the end",
        b"ev2 said say dev alice\nhi\n",
        b"gc1 1 2 3\n",
        b"ev1 said say dev alice\n",  # chat without lines
        b"ev1 said shout dev alice\nhi\n",
        b"ev1 said say d#v alice\nhi\n",
        b"ev1 said say dev al ice\nhi\n",
        b"ev1 said say dev alice\nhi \x1b[2J\n",
        b"ev1 said say dev alice\n\xff\xfe\n",
        b"ev1 said say dev alice\nspoof\xe2\x80\xaeed\n",  # a bidi override
        b"ev1 join dev\n",
        b"ev1 join dev bob\nextra\n",
        b"ev1 part dev bob 1\n",  # a reason announced, none given
        b"ev1 part dev bob 0\nreason\n",
        b"ev1 part dev bob 2\n",
        b"ev1 quit bob  0\n",
        b"ev1 quit bob dev,,ops 0\n",
        b"ev1 nick bob rob\n",
        b"ev1 topic dev alice\n",
        b"ev1 mode dev alice\n",
        b"ev1 mode dev alice\n+oo bob\n",
        b"ev1 kick dev bob alice\n",
        b"ev1 note dev\nhi\n",
        b"ev1 msg say alice bob\n",
        b"ev1 msg say alice bob hi\nmore\n",
        b"ev1 shout dev alice\n",
        b"ev1 said say dev alice\n" + b"x" * codec.MAX_BYTES + b"\n",
    ],
)
def test_junk_is_refused(junk: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(junk)


@given(data=st.binary(max_size=80))
def test_random_bytes_decode_to_an_event_or_a_codec_error(data: bytes) -> None:
    try:
        codec.decode(data)
    except codec.CodecError:
        pass


def test_a_user_in_several_rooms_hears_a_quit_from_the_first_room_it_shares() -> None:
    listed = ["lobby", "dev", "ops"]
    assert codec.first_shared(listed, {"dev", "ops"}, "dev")
    assert not codec.first_shared(listed, {"dev", "ops"}, "ops")
    assert codec.first_shared(listed, {"ops"}, "ops")
    assert not codec.first_shared(listed, {"elsewhere"}, "ops")


def test_an_event_on_a_rooms_channel_must_be_for_that_room() -> None:
    said = codec.encode(Said("dev", "alice", (b"hi",)))
    assert codec.decode_for_room(said, "DEV") == (Said("dev", "alice", (b"hi",)), ())
    with pytest.raises(codec.CodecError, match="for #dev on #lobby"):
        codec.decode_for_room(said, "lobby")
    quit = codec.encode(Quit("alice"), ["dev", "ops"])
    assert codec.decode_for_room(quit, "ops")[1] == ("dev", "ops")
    with pytest.raises(codec.CodecError, match="other rooms"):
        codec.decode_for_room(quit, "lobby")
    with pytest.raises(codec.CodecError, match="private"):
        codec.decode_for_room(codec.encode(Private("alice", "bob", "hi")), "lobby")
    note = codec.encode(ServerNotice("lines may be missing"))
    assert codec.decode_for_room(note, "lobby") == (ServerNotice("lines may be missing"), ())


def test_a_private_message_must_be_for_its_recipient() -> None:
    data = codec.encode(Private("alice", "Bob", "hi"))
    assert codec.decode_private(data, "bob") == Private("alice", "Bob", "hi")
    with pytest.raises(codec.CodecError):
        codec.decode_private(data, "carol")
    with pytest.raises(codec.CodecError):
        codec.decode_private(codec.encode(Joined("dev", "bob")), "bob")
