"""End-to-end: look-alike nicknames and room names, over real sockets (protocol rule 2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import ChatClient

Connect = Callable[..., ChatClient]


@pytest.mark.parametrize(
    ("held", "look_alike"),
    [
        ("bob", "b\u043eb"),  # Cyrillic o
        ("bob", "\uff42\uff4f\uff42"),  # full width
        ("alice", "\u0430lice"),  # Cyrillic a
    ],
    ids=["cyrillic-o", "full-width", "cyrillic-a"],
)
def test_look_alike_of_online_nick_is_refused_as_taken(connect: Connect, held: str, look_alike: str) -> None:
    connect(held)
    impostor = connect()
    impostor.expect_prompt()
    impostor.send(look_alike)
    assert "taken" in impostor.expect(r"^\*\*\* ").string
    impostor.expect_prompt()  # asked again, not welcomed


def test_mixed_script_nick_is_refused_as_invalid(connect: Connect) -> None:
    """``\u0431ob`` (Cyrillic be) is no skeleton look-alike of bob, but it mixes scripts."""
    connect("bob")
    impostor = connect()
    impostor.expect_prompt()
    impostor.send("\u0431ob")
    assert "invalid" in impostor.expect(r"^\*\*\* ").string
    impostor.expect_prompt()


def test_single_script_name_of_another_script_is_welcome(connect: Connect) -> None:
    connect("bob")
    assert "Welcome, \u0431\u043e\u0431!" in connect("\u0431\u043e\u0431").lines[-1]


def test_look_alike_nick_is_refused_on_rename(connect: Connect) -> None:
    connect("bob")
    carol = connect("carol")
    carol.send("/nick b\u043eb")
    assert "taken" in carol.expect(r"^\*\*\* ").string


def test_look_alike_room_name_joins_the_existing_room(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect("bob joined")
    alice.send("/join dev")
    alice.expect(r"you joined #dev$")
    bob.send("/join d\u0435v")  # Cyrillic ie
    bob.expect(r"you joined #dev$")
    alice.expect(r"^\*\*\* bob joined #dev$")
