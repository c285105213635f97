"""core.irc.caps and core.irc.isupport: capability negotiation and 005."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core.irc.caps import SUPPORTED, Caps
from gevent_chat.core.irc.isupport import isupport_lines
from gevent_chat.core.irc.message import parse


def _params(raw: bytes) -> list[str]:
    parsed = parse(raw.rstrip(b"\r\n"))
    assert parsed is not None
    return parsed.params


def test_ls_302_lists_values_and_suspends_registration() -> None:
    caps = Caps()
    [reply] = caps.command("srv", None, ["LS", "302"], registered=False)
    target, sub, listed = _params(reply)
    assert (target, sub) == ("*", "LS")
    assert set(listed.split()) == set(SUPPORTED)
    assert caps.negotiating
    assert "cap-notify" in caps  # implied by 302
    caps.command("srv", None, ["END"], registered=False)
    assert not caps.negotiating


def test_ls_after_registration_does_not_suspend_anything() -> None:
    caps = Caps()
    caps.command("srv", "al", ["LS"], registered=True)
    assert not caps.negotiating


def test_req_with_one_unknown_cap_is_refused_whole() -> None:
    caps = Caps()
    [reply] = caps.command("srv", "al", ["REQ", "server-time sasl"], registered=True)
    assert _params(reply) == ["al", "NAK", "server-time sasl"]
    assert "server-time" not in caps


@given(
    st.lists(st.sampled_from(sorted(SUPPORTED)), unique=True), st.lists(st.sampled_from(sorted(SUPPORTED)))
)
def test_acked_requests_enable_then_disable(first: list[str], dropped: list[str]) -> None:
    """LIST always reports exactly what the ACKs added and removed."""
    caps = Caps()
    caps.command("srv", "al", ["REQ", " ".join(first)], registered=True)
    [ack] = caps.command("srv", "al", ["REQ", " ".join("-" + d for d in dropped)], registered=True)
    assert _params(ack)[1] == "ACK"
    [listed] = caps.command("srv", "al", ["LIST"], registered=True)
    assert set(_params(listed)[2].split()) == set(first) - set(dropped)


def test_unknown_subcommand_is_410() -> None:
    [reply] = Caps().command("srv", "al", ["FOO"], registered=True)
    assert reply.split(b" ")[1] == b"410"


def test_isupport_lines_stay_short_and_carry_the_basics() -> None:
    lines = isupport_lines("srv", "al", "net")
    tokens = [t for raw in lines for t in _params(raw)[1:-1]]
    assert all(len(raw) <= 512 for raw in lines)
    for wanted in (
        "CHANTYPES=#",
        "PREFIX=(ov)@+",
        "CASEMAPPING=rfc8265",
        "NICKLEN=32",
        "NETWORK=net",
        "UTF8ONLY",
    ):
        assert wanted in tokens
    assert any(t.startswith("CHANMODES=") for t in tokens)
    assert any(t.startswith("TARGMAX=") for t in tokens)
