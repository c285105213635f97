"""A room's rules and the server bans as records (``core.records``): plain calls and properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core import records, wire
from gevent_chat.core.events import Invited, Joined, Kicked, ModeChanged, NickChanged, Said, TopicSet
from gevent_chat.core.masks import parse_mask
from gevent_chat.core.modes import FLAGS, parse_changes
from gevent_chat.core.roomstate import Ban, RoomState, Topic
from gevent_chat.core.serverbans import ServerBans

NICKS = st.sampled_from(["alice", "bob", "carol", "dave", "Zoë"])
MASKS = st.sampled_from(["spam*", "*@10.0.0.*", "bob", "x?y*"])


@st.composite
def states(draw: st.DrawFn) -> RoomState:
    when = st.floats(min_value=0, max_value=2e9, allow_nan=False)
    banned = draw(st.lists(MASKS, unique=True, max_size=3))
    topic = draw(st.one_of(st.none(), st.builds(Topic, st.sampled_from(["hi", "release day"]), NICKS, when)))
    return RoomState(
        "dev",
        topic=topic,
        operators=frozenset(draw(st.lists(st.sampled_from(["alice", "bob", "dz\u0306ernal"]), unique=True))),
        voiced=frozenset(draw(st.lists(st.sampled_from(["carol", "dave"]), unique=True))),
        flags=frozenset(draw(st.lists(st.sampled_from(FLAGS), unique=True))),
        key=draw(st.one_of(st.none(), st.just("sesame"))),
        limit=draw(st.one_of(st.none(), st.integers(1, 1000))),
        bans=tuple(Ban(parse_mask(m), "alice", float(i)) for i, m in enumerate(banned)),
        invites=tuple(sorted(draw(st.lists(st.sampled_from(["erin", "frank"]), unique=True)))),
    )


@given(states())
def test_a_rooms_record_reads_back_as_the_same_rules(state: RoomState) -> None:
    assert records.load("dev", records.fields(state)) == (state, 0)


@given(states(), st.lists(st.sampled_from(["+m", "-t", "+i", "-n", "+s"]), max_size=4))
def test_the_changes_of_a_mode_change_bring_a_record_to_the_new_rules(
    state: RoomState, words: list[str]
) -> None:
    after, event = state.change_modes("alice", parse_changes(words), lambda n: n, 9.0, oper=True)
    record = records.fields(state)
    if event is not None:
        for field, value in records.changes(event, after).items():
            if value is None:
                record.pop(field, None)
            else:
                record[field] = value
    assert records.load("dev", record)[0] == after


def test_each_decision_changes_only_its_own_fields() -> None:
    state = RoomState("dev", topic=Topic("hi", "alice", 3.0), operators=frozenset({"alice"}))
    assert records.changes(TopicSet("dev", "alice", "hi"), state) == {
        "topic": '["hi", "alice", 3.0]',
        "rules": "1",
    }
    banned = RoomState("dev", bans=(Ban(parse_mask("spam*"), "alice", 4.0),))
    event = ModeChanged("dev", "alice", (("+b", "spam*"), ("-o", "Bob"), ("+k", "sesame")))
    assert records.changes(event, banned) == {
        "ban:spam*": '["alice", 4.0]',
        "op:bob": None,
        "key": None,  # the state says there is no key: what holds is written
        "rules": "1",
    }
    assert records.changes(Kicked("dev", "Bob", "alice"), state) == {
        "op:bob": None,
        "vo:bob": None,
        "rules": "1",
    }
    assert records.changes(Invited("dev", "Carol", "alice"), state) == {"inv:carol": "1", "rules": "1"}
    assert records.changes(Joined("dev", "alice"), state) == {"op:alice": "1", "rules": "1"}  # the creator
    assert records.changes(Joined("dev", "bob"), state) == {}
    renamed = state.rename("alice", "Alicia")
    assert records.changes(NickChanged("alice", "Alicia"), renamed) == {"op:alicia": "1", "rules": "1"}
    assert records.changes(Said("dev", "alice", (b"hi",)), state) == {}


def test_another_programs_fields_are_skipped_and_counted() -> None:
    junk = {
        "rules": "1",
        "topic": "[1",
        "ban:": "x",
        "limit": "-3",
        "mode:q": "+",
        "op:Not Folded": "1",
        "zz": "",
    }
    state, skipped = records.load("dev", junk)
    assert state == RoomState("dev")
    assert skipped == 6


def test_the_lobby_takes_no_join_rules_from_a_record() -> None:
    record = records.fields(RoomState("lobby", flags=frozenset("ti"), key="k", limit=3))
    state, _ = records.load("lobby", record, open_room=True)
    assert (state.key, state.limit, "i" in state.flags, state.open) == (None, None, False, True)


def test_server_bans_read_back_oldest_first() -> None:
    bans, first = ServerBans().add("spam*", "root", "flooding", 5.0)
    bans, second = bans.add("*@10.0.0.*", "root", None, 2.0)
    record = dict(records.encode_server_ban(b) for b in (first, second))
    record["bad["] = "nonsense"
    loaded, skipped = records.load_server_bans(record)
    assert loaded.bans == (second, first)
    assert skipped == 1


def test_control_messages_carry_a_word_a_nick_and_a_line() -> None:
    assert wire.decode_control(wire.encode_control("kill", "Bob", "go away")) == ("kill", "bob", "go away")
    assert wire.decode_control(wire.encode_control("gbans")) == ("gbans", None, "")
    for bad in (
        b"gcc1 explode - \n",
        b"gcc1 kill\n",
        b"gcp1 kill bob\nx",
        b"gcc1 kill b b\nx",
        b"gcc1 kill bob\na\nb",
    ):
        try:
            wire.decode_control(bad)
        except wire.WireError:
            continue
        raise AssertionError(bad)
