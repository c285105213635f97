"""A room's rules (``core.roomstate``): the creator, topic, speaking, joining, modes, bans, invites."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.errors import (
    BadKey,
    BanListFull,
    Banned,
    CannotSend,
    ClientError,
    InviteOnly,
    Moderated,
    NotOperator,
    RoomFull,
    RoomRefusal,
    UserNotInRoom,
)
from gevent_chat.core.events import Invited, Kicked, ModeChanged, TopicSet
from gevent_chat.core.masks import parse_mask
from gevent_chat.core.modes import Change, parse_changes
from gevent_chat.core.roomstate import MAX_BANS, MAX_INVITES, MAX_TOPIC_CHARS, RoomState
from gevent_chat.core.serverbans import MAX_SERVER_BANS, ServerBan, ServerBans

MEMBERS = {"alice": "alice", "bob": "Bob", "carol": "carol"}


def member(nick: str) -> str | None:
    return MEMBERS.get(nick.lower())


def room_by(creator: str = "alice") -> RoomState:
    return RoomState("dev").join(creator, creator=True)


def modes(state: RoomState, *words: str, by: str = "alice", oper: bool = False) -> RoomState:
    return state.change_modes(by, parse_changes(list(words)), member, 0.0, oper)[0]


def test_the_creator_runs_the_room_and_later_joiners_do_not() -> None:
    state = room_by("alice").join("bob", creator=False)
    assert state.is_operator("Alice")
    assert not state.is_operator("bob")
    assert state.mode_words() == ["+nt"]


@given(st.lists(st.sampled_from(["alice", "bob", "carol", "dave"]), min_size=1, max_size=6, unique=True))
def test_exactly_the_creator_is_operator_after_any_joins(nicks: list[str]) -> None:
    state = RoomState("dev")
    for i, nick in enumerate(nicks):
        state = state.join(nick, creator=i == 0)
    assert [n for n in nicks if state.is_operator(n)] == nicks[:1]


def test_under_plus_t_only_an_operator_sets_the_topic() -> None:
    state = room_by().join("bob", creator=False)
    with pytest.raises(NotOperator, match="you are not an operator of #dev"):
        state.set_topic("bob", "mine", 1.0)
    state, event = state.set_topic("alice", "release day", 2.0)
    assert event == TopicSet("dev", "alice", "release day")
    assert state.topic is not None
    assert (state.topic.text, state.topic.nick, state.topic.time) == ("release day", "alice", 2.0)
    state = modes(state, "-t")
    state, _ = state.set_topic("bob", "", 3.0)
    assert state.topic is None  # an empty topic clears it


def test_a_server_operator_acts_as_operator_of_every_room() -> None:
    state = room_by().join("bob", creator=False)
    state, _ = state.set_topic("bob", "by the server", 1.0, oper=True)
    state = modes(state, "+i", by="bob", oper=True)
    state.check_join("zed", None, None, members=2, oper=True)
    assert "i" in state.flags


@given(st.text(alphabet=string.printable + "\x1b\x9b\u202e\u200b", max_size=MAX_TOPIC_CHARS * 2))
def test_a_topic_is_sanitised_and_bounded(text: str) -> None:
    state, event = room_by().set_topic("alice", text, 0.0)
    assert len(event.text) <= MAX_TOPIC_CHARS
    assert event.text.isprintable()
    assert event.text == event.text.strip()
    assert (state.topic.text if state.topic else "") == event.text


def test_in_a_moderated_room_only_operators_and_voiced_members_speak() -> None:
    state = modes(room_by().join("bob", creator=False).join("carol", creator=False), "+mv", "carol")
    with pytest.raises(CannotSend, match="#dev is moderated: you cannot speak") as caught:
        state.check_speak("bob")
    assert caught.value.why == "moderated"
    assert caught.value.room == "dev"
    state.check_speak("alice")
    state.check_speak("carol")
    modes(state, "-m").check_speak("bob")


def test_a_ban_keeps_out_matching_users_by_nick_or_address() -> None:
    state = modes(room_by(), "+bb", "spam*", "*@203.0.113.*")
    with pytest.raises(Banned, match="cannot join #dev: you are banned"):
        state.check_join("SPAMMER", "192.0.2.1", None, members=1)
    with pytest.raises(Banned):
        state.check_join("innocent", "203.0.113.9", None, members=1)
    state.check_join("innocent", "192.0.2.1", None, members=1)
    modes(state, "-b", "SPAM*").check_join("spammer", "192.0.2.1", None, members=1)


def test_invite_only_key_and_limit_each_refuse_a_join() -> None:
    state = room_by()
    with pytest.raises(InviteOnly, match="cannot join #dev: invite only"):
        modes(state, "+i").check_join("bob", None, None, members=1)
    keyed = modes(state, "+k", "s3cret")
    with pytest.raises(BadKey, match="cannot join #dev: bad key"):
        keyed.check_join("bob", None, None, members=1)
    with pytest.raises(BadKey):
        keyed.check_join("bob", None, "wrong", members=1)
    keyed.check_join("bob", None, "s3cret", members=1)
    assert keyed.mode_words(show_key=False) == ["+ntk", "*"]
    full = modes(state, "+l", "2")
    full.check_join("bob", None, None, members=1)
    with pytest.raises(RoomFull, match="cannot join #dev: room is full"):
        full.check_join("bob", None, None, members=2)
    assert modes(keyed, "-k").key is None


def test_an_invitation_passes_invite_only_key_and_limit_once_but_never_a_ban() -> None:
    state = modes(room_by(), "+ikl", "key", "1")
    with pytest.raises(NotOperator):
        state.join("bob", creator=False).invite("bob", "carol")
    state, event = state.invite("alice", "Carol")
    assert event == Invited("dev", "Carol", "alice")
    state.check_join("carol", None, None, members=5)
    state = state.join("carol", creator=False).leave("carol")
    with pytest.raises(InviteOnly):
        state.check_join("carol", None, None, members=1)  # the invitation was used
    banned, _ = modes(state, "+b", "carol").invite("alice", "carol")
    with pytest.raises(Banned):
        banned.check_join("carol", None, None, members=1)


def test_anyone_in_a_room_without_plus_i_may_invite() -> None:
    _state, event = room_by().join("bob", creator=False).invite("bob", "carol")
    assert event.by == "bob"


def test_invitations_are_bounded_oldest_forgotten_first() -> None:
    state = room_by()
    for i in range(MAX_INVITES + 5):
        state, _ = state.invite("alice", f"guest{i}")
    assert len(state.invites) == MAX_INVITES
    assert "guest0" not in state.invites
    assert f"guest{MAX_INVITES + 4}" in state.invites


def test_only_operators_change_modes_and_kick() -> None:
    state = room_by().join("bob", creator=False)
    with pytest.raises(NotOperator):
        modes(state, "+m", by="bob")
    with pytest.raises(NotOperator):
        state.kick("bob", "alice", None)
    state, event = state.kick("alice", "Bob", "spam\x1b[31m")
    assert event == Kicked("dev", "Bob", "alice", "spam")


def test_a_bare_ban_listing_needs_no_operator_and_changes_nothing() -> None:
    state = room_by().join("bob", creator=False)
    assert state.change_modes("bob", parse_changes(["+b"]), member, 0.0) == (state, None)


def test_op_and_voice_name_members_only_and_the_event_spells_them_as_they_do() -> None:
    state = room_by().join("bob", creator=False)
    with pytest.raises(UserNotInRoom, match="zed is not in #dev") as caught:
        modes(state, "+o", "zed")
    assert caught.value.nick == "zed"
    new, event = state.change_modes("alice", parse_changes(["+ov", "BOB", "bob"]), member, 0.0)
    assert event == ModeChanged("dev", "alice", (("+o", "Bob"), ("+v", "Bob")))
    assert new.is_operator("bob")
    assert new.is_voiced("bob")


def test_a_change_that_changes_nothing_is_left_out_of_the_event() -> None:
    state = room_by()
    new, event = state.change_modes("alice", parse_changes(["+tm"]), member, 0.0)
    assert event == ModeChanged("dev", "alice", (("+m", None),))
    assert new.change_modes("alice", parse_changes(["+m"]), member, 0.0) == (new, None)


def test_the_ban_list_is_bounded_and_a_refused_change_changes_nothing() -> None:
    state = room_by()
    for i in range(MAX_BANS):
        state = modes(state, "+b", f"spam{i}")
    with pytest.raises(BanListFull, match=f"already has {MAX_BANS} bans"):
        state.change_modes("alice", parse_changes(["+mb", "one-more"]), member, 0.0)
    assert len(state.bans) == MAX_BANS
    assert "m" not in state.flags
    assert len(modes(state, "+b", "SPAM0").bans) == MAX_BANS  # already there: no change, no refusal


def test_leaving_drops_status_and_renaming_carries_it() -> None:
    state = modes(room_by().join("bob", creator=False), "+v", "bob")
    renamed = state.rename("bob", "robert").rename("alice", "ALICE")
    assert renamed.is_voiced("robert")
    assert not renamed.is_voiced("bob")
    assert renamed.is_operator("alice")
    left = renamed.leave("robert").leave("alice")
    assert not left.operators
    assert not left.voiced


LETTER_CHANGE = st.one_of(
    st.builds(Change, st.sampled_from("+-"), st.sampled_from("tnmis")),
    st.builds(Change, st.just("+"), st.just("k"), st.sampled_from(["a", "b"])),
    st.builds(Change, st.just("-"), st.just("k")),
    st.builds(Change, st.just("+"), st.just("l"), st.sampled_from(["1", "9"])),
    st.builds(Change, st.just("-"), st.just("l")),
    st.builds(
        Change, st.sampled_from("+-"), st.sampled_from("ov"), st.sampled_from(["alice", "bob", "CAROL"])
    ),
    st.builds(Change, st.sampled_from("+-"), st.just("b"), st.sampled_from(["x*", "X*", "*@10.*", "bob"])),
)


@given(st.lists(LETTER_CHANGE, max_size=6))
def test_replaying_the_event_reproduces_the_state(changes: list[Change]) -> None:
    # What another node does with a ModeChanged: the same changes, the same result.
    state = room_by()
    new, event = state.change_modes("alice", changes, member, 0.0)
    replayed = state
    if event is not None:
        again = [Change(sign_letter[0], sign_letter[1], arg) for sign_letter, arg in event.changes]
        replayed, echoed = state.change_modes("alice", again, member, 0.0)
        assert echoed == event
    assert replayed == new


@given(st.lists(LETTER_CHANGE, max_size=6))
def test_changes_at_once_equal_changes_one_by_one(changes: list[Change]) -> None:
    state = room_by()
    at_once, _ = state.change_modes("alice", changes, member, 0.0, oper=True)
    one_by_one = state
    for change in changes:  # as a server operator, so a -o alice does not stop the rest
        one_by_one, _ = one_by_one.change_modes("alice", [change], member, 0.0, oper=True)
    assert at_once == one_by_one
    assert ("k" in at_once.mode_words()[0]) == (at_once.key is not None)


def test_server_bans_match_add_refuse_duplicates_and_lift() -> None:
    bans = ServerBans()
    bans, ban = bans.add("*@203.0.113.*", "root", "spam\x1b[2J", 5.0)
    assert (ban.reason, ban.nick, ban.time) == ("spam", "root", 5.0)
    assert bans.matching("anyone", "203.0.113.4") == ban
    assert bans.matching("anyone", "192.0.2.1") is None
    with pytest.raises(ClientError, match="already banned"):
        bans.add("*!*@203.0.113.*", "root", None, 6.0)
    with pytest.raises(ClientError, match="is not banned"):
        bans.remove("nobody")
    bans, lifted = bans.remove("*@203.0.113.*")
    assert lifted == ban
    assert len(bans) == 0


def test_server_bans_are_bounded() -> None:
    full = tuple(ServerBan(parse_mask(f"n{i}"), "root", None, 0.0) for i in range(MAX_SERVER_BANS))
    bans = ServerBans(full)
    with pytest.raises(ClientError, match=f"already has {MAX_SERVER_BANS} bans"):
        bans.add("one-more", "root", None, 0.0)


def test_an_open_room_has_no_creator_and_keeps_nobody_out() -> None:
    lobby = RoomState("lobby", open=True).join("alice", creator=True)
    assert not lobby.is_operator("alice")
    with pytest.raises(NotOperator):
        lobby.set_topic("alice", "mine", 0.0)
    lobby, _ = lobby.set_topic("root", "welcome", 0.0, oper=True)
    for words in (["+i"], ["+k", "key"], ["+l", "5"], ["+b", "bob"]):
        with pytest.raises(RoomRefusal, match="#lobby is open to everyone"):
            lobby.change_modes("root", parse_changes(words), member, 0.0, oper=True)
    with pytest.raises(RoomRefusal, match="nobody is kicked from #lobby"):
        lobby.kick("root", "alice", None, oper=True)
    moderated = lobby.change_modes("root", parse_changes(["+mo", "alice"]), member, 0.0, oper=True)[0]
    moderated.check_speak("alice")
    with pytest.raises(CannotSend):
        moderated.check_speak("bob")
    moderated.check_join("anyone", "203.0.113.1", None, members=10**6)


@given(
    flags=st.sets(st.sampled_from("imnst")),
    key=st.sampled_from([None, "k1"]),
    given_key=st.sampled_from([None, "k1", "wrong"]),
    limit=st.sampled_from([None, 1, 3]),
    members=st.integers(0, 4),
    banned=st.booleans(),
    invited=st.booleans(),
    oper=st.booleans(),
)
def test_every_join_refusal_agrees_with_a_plain_oracle(
    flags: set[str],
    key: str | None,
    given_key: str | None,
    limit: int | None,
    members: int,
    banned: bool,
    invited: bool,
    oper: bool,
) -> None:
    words = [f"+{''.join(sorted(flags))}"] if flags else []
    if key:
        words += ["+k", key]
    if limit:
        words += ["+l", str(limit)]
    if banned:
        words += ["+b", "*@198.51.100.*"]
    state = modes(room_by(), *words) if words else room_by()
    if invited:
        state, _ = state.invite("alice", "zed")
    # The oracle: a server operator passes all; a ban holds even the invited; then +i, +k, +l.
    expected: type[Exception] | None = None
    if not oper:
        if banned:
            expected = Banned
        elif "i" in flags and not invited:
            expected = InviteOnly
        elif key is not None and given_key != key and not invited:
            expected = BadKey
        elif limit is not None and members >= limit and not invited:
            expected = RoomFull
    if expected is None:
        state.check_join("zed", "198.51.100.7", given_key, members, oper)
    else:
        with pytest.raises(expected, match="cannot join #dev: "):
            state.check_join("zed", "198.51.100.7", given_key, members, oper)


@given(st.sets(st.sampled_from("timsn")), st.sampled_from(["alice", "bob", "carol"]), st.booleans())
def test_speaking_is_refused_exactly_to_the_voiceless_in_a_moderated_room(
    flags: set[str], nick: str, oper: bool
) -> None:
    state = room_by().join("bob", creator=False).join("carol", creator=False)
    state = modes(state, f"-{''.join(sorted(set('tn') - flags))}") if set("tn") - flags else state
    state = (
        modes(state, f"+{''.join(sorted(flags))}", "+v", "carol") if flags else modes(state, "+v", "carol")
    )
    if "m" in flags and nick == "bob" and not oper:
        with pytest.raises(Moderated):
            state.check_speak(nick, oper)
    else:
        state.check_speak(nick, oper)


@given(st.sampled_from(["alice", "bob"]), st.booleans(), st.sampled_from(["topic", "mode", "kick", "invite"]))
def test_operator_only_actions_are_refused_exactly_to_non_operators(
    nick: str, oper: bool, action: str
) -> None:
    state = modes(room_by().join("bob", creator=False), "+i")
    allowed = nick == "alice" or oper
    attempts: dict[str, Callable[[], object]] = {
        "topic": lambda: state.set_topic(nick, "t", 0.0, oper),
        "mode": lambda: state.change_modes(nick, parse_changes(["+m"]), member, 0.0, oper),
        "kick": lambda: state.kick(nick, "carol", None, oper),
        "invite": lambda: state.invite(nick, "zed", oper),
    }
    if allowed:
        attempts[action]()
    else:
        with pytest.raises(NotOperator, match="you are not an operator of #dev"):
            attempts[action]()
