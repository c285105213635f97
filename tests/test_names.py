"""Nickname and room-name rules (``core.names``), tested by calling functions.

Look-alikes are written as escapes so that the source shows which character
is which: ``\\u043e`` is a Cyrillic o, ``\\u0430`` a Cyrillic a, ``\\u0431`` a
Cyrillic be, ``\\uff42\\uff4f`` full-width b and o.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core import names, protocol
from gevent_chat.core.errors import ClientError, NickInvalid, NickTaken
from gevent_chat.core.registry import Registry

CYRILLIC_O_BOB = "b\u043eb"
CYRILLIC_BE_BOB = "\u0431ob"
FULL_WIDTH_BOB = "\uff42\uff4f\uff42"
CYRILLIC_A_ALICE = "\u0430lice"


class Member:
    def __init__(self, nick: str) -> None:
        self.nick = nick


def registry_with(*nicks: str) -> Registry[Member]:
    reg: Registry[Member] = Registry(contextlib.nullcontext())
    for nick in nicks:
        reg.add(nick, Member(nick))
    return reg


@pytest.mark.parametrize(
    ("held", "look_alike"),
    [
        ("bob", CYRILLIC_O_BOB),
        ("bob", FULL_WIDTH_BOB),
        ("bob", "BOB"),
        ("bob", "b0b"),
        ("alice", CYRILLIC_A_ALICE),
        ("mike", "rnike"),
    ],
)
def test_look_alikes_share_a_key(held: str, look_alike: str) -> None:
    """A failure means a second user can register a name that reads as a held one."""
    assert names.name_key(held) == names.name_key(look_alike)


@pytest.mark.parametrize("look_alike", [CYRILLIC_O_BOB, CYRILLIC_BE_BOB, FULL_WIDTH_BOB, "Bob"])
def test_look_alike_of_held_nick_is_refused(look_alike: str) -> None:
    reg = registry_with("bob")
    with pytest.raises(ClientError):
        reg.add(look_alike, Member(look_alike))
    assert len(reg) == 1


@pytest.mark.parametrize("look_alike", [CYRILLIC_O_BOB, FULL_WIDTH_BOB])
def test_skeleton_look_alike_is_refused_as_taken(look_alike: str) -> None:
    """Taken comes first, even for a name that mixes scripts."""
    with pytest.raises(NickTaken, match="taken"):
        registry_with("bob").add(look_alike, Member(look_alike))


def test_cyrillic_a_alice_is_taken_beside_alice() -> None:
    with pytest.raises(NickTaken, match="taken"):
        registry_with("alice").add(CYRILLIC_A_ALICE, Member(CYRILLIC_A_ALICE))


@pytest.mark.parametrize(
    "nick", [CYRILLIC_O_BOB, CYRILLIC_BE_BOB, CYRILLIC_A_ALICE, "alpha_\u03b1", "1\u0661"]
)
def test_mixed_script_nick_is_invalid_even_when_free(nick: str) -> None:
    with pytest.raises(NickInvalid, match=r"invalid nickname .*mix scripts"):
        registry_with().add(nick, Member(nick))


@pytest.mark.parametrize(
    "nick",
    [
        "bob",
        "\u0431\u043e\u0431",
        "\u0391\u03bb\u03ad\u03be\u03b7\u03c2",
        "tanaka\u7530\u4e2d",
        "Zo\u00eb",
        "b-o.b_1",
    ],
)
def test_single_script_nicks_are_accepted(nick: str) -> None:
    """Cyrillic, Greek, Latin with Han: a script of one's own is never refused."""
    reg = registry_with()
    reg.add(nick, Member(nick))
    assert reg.nick_of(nick) == nick  # shown as typed


def test_displayed_nick_stays_as_typed() -> None:
    reg = registry_with(FULL_WIDTH_BOB)
    assert reg.nick_of("bob") == FULL_WIDTH_BOB


def test_rename_to_look_alike_of_another_is_taken() -> None:
    reg = registry_with("bob", "carol")
    with pytest.raises(NickTaken):
        reg.rename("carol", CYRILLIC_O_BOB)


def test_rename_to_mixed_script_is_invalid() -> None:
    reg = registry_with("carol")
    with pytest.raises(NickInvalid):
        reg.rename("carol", "c\u0430rol")


def test_look_alike_room_is_the_same_room() -> None:
    reg = registry_with("bob", "carol")
    reg.move("bob", "dev")
    _, room = reg.move("carol", "d\u0435v")  # Cyrillic ie: joins #dev
    assert room.name == "dev"
    assert [r.name for r in reg.rooms()] == ["dev"]


def test_new_mixed_script_room_is_refused() -> None:
    reg = registry_with("bob")
    with pytest.raises(ClientError, match=r"invalid room name .*mix scripts"):
        reg.move("bob", "d\u0435v")
    assert reg.room_of("bob").name == "lobby"


def test_protocol_keeps_the_names_it_always_exported() -> None:
    """``commands`` reaches the name rules through ``protocol``."""
    assert protocol.validate_nick is names.validate_nick
    assert protocol.validate_room is names.validate_room
    assert protocol.name_key("B\u043eb") == names.name_key("bob")


def test_case_folding_comes_before_the_skeleton() -> None:
    """``Ian`` and ``ian`` are one name; so ``I`` is not also unified with ``l``."""
    assert names.name_key("Ian") == names.name_key("ian") != names.name_key("lan")


@given(st.text(max_size=12))
def test_name_key_ignores_case_and_width(name: str) -> None:
    """A failure means ``Bob`` and ``bob`` (or its full-width form) could both be held."""
    assert names.name_key(name.upper()) == names.name_key(name.upper().casefold())
    assert names.name_key(name) == names.name_key(names.casefold(name))


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12))
def test_ascii_names_are_single_script(name: str) -> None:
    """A failure means the script rule refuses plain ASCII names."""
    assert names.is_single_script(name)


def test_names_module_imports_no_gevent_or_socket() -> None:
    code = "import sys, gevent_chat.core.names; sys.exit('gevent' in sys.modules or 'socket' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=8).returncode == 0
