"""core.irc.render: chat events as IRC lines, per negotiated capabilities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.events import (
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
    TopicSet,
)
from gevent_chat.core.irc.message import parse
from gevent_chat.core.irc.render import Renderers, history_batch, iso_time, mode_params

MASKS = {"al": "~al@cloak-1"}
WHEN = 1_800_000_000.25


def _render(event: object, caps: frozenset[str] = frozenset()) -> list[bytes]:
    out = Renderers("srv", MASKS).for_caps(caps).render(event, WHEN)  # type: ignore[arg-type]
    assert out.endswith(b"\r\n")
    return out.split(b"\r\n")[:-1]


def test_said_lines_become_one_privmsg_each() -> None:
    assert _render(Said("lobby", "al", (b"hi", b"there you"))) == [
        b":al!~al@cloak-1 PRIVMSG #lobby hi",
        b":al!~al@cloak-1 PRIVMSG #lobby :there you",
    ]


def test_me_is_a_ctcp_action_and_notice_a_notice() -> None:
    assert _render(Said("lobby", "al", (b"waves",), Kind.ME)) == [
        b":al!~al@cloak-1 PRIVMSG #lobby :\x01ACTION waves\x01"
    ]
    assert _render(Private("al", "bo", "psst", Kind.NOTICE)) == [b":al!~al@cloak-1 NOTICE bo psst"]


def test_unknown_sender_gets_a_mask_on_the_server() -> None:
    assert _render(Quit("zed", None)) == [b":zed!zed@srv QUIT :Client Quit"]


def test_server_time_tags_each_line_with_the_event_time() -> None:
    [raw] = _render(Joined("lobby", "al"), frozenset({"server-time", "echo-message"}))
    assert raw == b"@time=2027-01-15T08:00:00.250Z :al!~al@cloak-1 JOIN #lobby"


def test_renderers_are_shared_by_clients_with_the_same_rendering_caps() -> None:
    renderers = Renderers("srv", MASKS)
    assert renderers.for_caps({"echo-message"}) is renderers.for_caps(set())
    assert renderers.for_caps({"server-time"}) is not renderers.for_caps(set())


def test_every_membership_event_renders_its_command() -> None:
    cases = {
        Parted("lobby", "al", "bye now"): b":al!~al@cloak-1 PART #lobby :bye now",
        NickChanged("al", "alf"): b":al!~al@cloak-1 NICK alf",
        TopicSet("lobby", "al", "news"): b":al!~al@cloak-1 TOPIC #lobby news",
        ModeChanged("lobby", "al", (("+o", "bo"), ("+m", None), ("-v", "cy"))): (
            b":al!~al@cloak-1 MODE #lobby +om-v bo cy"
        ),
        Kicked("lobby", "bo", "al", None): b":al!~al@cloak-1 KICK #lobby bo al",
        Invited("lobby", "bo", "al"): b":al!~al@cloak-1 INVITE bo #lobby",
    }
    for event, expected in cases.items():
        assert _render(event) == [expected]


@given(st.lists(st.tuples(st.sampled_from("+-"), st.sampled_from("ovbkl"), st.booleans()), min_size=1))
def test_mode_params_keep_letters_and_arguments_in_order(changes: list[tuple[str, str, bool]]) -> None:
    pairs = [(sign + letter, f"a{i}" if has else None) for i, (sign, letter, has) in enumerate(changes)]
    letters, *args = mode_params(pairs)
    assert letters.replace("+", "").replace("-", "") == "".join(p[0][1] for p in pairs)
    assert args == [a for _, a in pairs if a is not None]
    assert letters[0] == pairs[0][0][0]


def test_history_arrives_as_a_batch_with_original_times() -> None:
    renderer = Renderers("srv", MASKS).for_caps({"server-time"})
    entries = [(WHEN, Said("lobby", "al", (b"one",))), (WHEN + 60, Said("lobby", "al", (b"two",)))]
    raw = history_batch(renderer, "lobby", entries, frozenset({"batch", "server-time"}), "h1")
    lines = [parse(x) for x in raw.split(b"\r\n")[:-1]]
    assert [x.command for x in lines if x] == ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH"]
    assert lines[0] is not None
    assert lines[0].params == ["+h1", "chathistory", "#lobby"]
    assert lines[1] is not None
    assert lines[1].tags == {"batch": "h1", "time": iso_time(WHEN)}
    assert lines[2] is not None
    assert lines[2].tags == {"batch": "h1", "time": iso_time(WHEN + 60)}


def test_history_without_batch_or_time_is_plain_lines() -> None:
    renderer = Renderers("srv", MASKS).for_caps(set())
    raw = history_batch(renderer, "lobby", [(WHEN, Said("lobby", "al", (b"one",)))], frozenset(), "h1")
    assert raw == b":al!~al@cloak-1 PRIVMSG #lobby one\r\n"
