"""IRC end to end with the room model: topics, channel modes, kicks, bans, invites, operators.

Each rule is the shared core's; these check that IRC users meet it with
IRC's numerics and that line users and IRC users see one another's changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from irctokens.line import Line

from gevent_chat.core import opers
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient
from tests.irc_client import IrcClient

NAME = "irc.test"
OPER_PASSWORD = "correct horse"
OPER_HASH = opers.hash_password(OPER_PASSWORD, bytes(range(16)))


@pytest.fixture
def server(make_server: Callable[..., ChatServer], tmp_path: Path) -> ChatServer:
    path = tmp_path / "opers"
    path.write_text(f"root {OPER_HASH}\n")
    return make_server(irc_port=0, server_name=NAME, opers_file=str(path))


def joined(client: IrcClient, room: str = "#dev") -> list[Line]:
    client.send(f"JOIN {room}")
    return client.collect(["366", "471", "473", "474", "475"])


def test_the_creator_is_operator_and_names_show_it(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    joined(alice)
    bob = irc("bob", ("multi-prefix",))
    names = joined(bob)
    assert next(m for m in names if m.command == "353").params[-1].split() == ["@alice", "bob"]


def test_topic_is_set_by_operators_and_seen_by_line_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = irc("alice")
    joined(alice)
    carol = connect("carol")
    carol.send("/join #dev")
    carol.expect(r"^\*\*\* you joined #dev$")
    bob = irc("bob")
    joined(bob)
    bob.send("TOPIC #dev :mine now")
    assert bob.expect("482").params[1] == "#dev"
    alice.send("TOPIC #dev :release on friday")
    assert alice.expect("TOPIC").params == ["#dev", "release on friday"]
    carol.expect(r"alice set the topic.*release on friday")
    bob.send("TOPIC #dev")
    assert bob.expect("332").params[-1] == "release on friday"
    assert bob.expect("333").params[2].startswith("alice!")


def test_modes_key_limit_and_invite_are_enforced(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    joined(alice)
    alice.send("MODE #dev +k sesame")
    assert alice.expect("MODE").params == ["#dev", "+k", "sesame"]
    bob = irc("bob")
    assert joined(bob)[-1].command == "475"
    assert joined(bob, "#dev sesame")[-1].command == "366"
    alice.send("MODE #dev")
    assert alice.expect("324").params[1:] == ["#dev", "+ntk", "sesame"]
    alice.send("MODE #dev +il 2")
    alice.expect("MODE")
    carol = irc("carol")
    assert joined(carol, "#dev sesame")[-1].command in ("471", "473")
    alice.send("INVITE carol #dev")
    assert alice.expect("341").params[1:] == ["carol", "#dev"]
    invite = carol.expect("INVITE")
    assert invite.params == ["carol", "#dev"]


def test_kick_and_ban_reach_irc_and_line_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = irc("alice")
    joined(alice)
    bob = irc("bob")
    joined(bob)
    carol = connect("carol")
    carol.send("/join #dev")
    carol.expect(r"^\*\*\* you joined #dev$")
    alice.send("KICK #dev bob :too loud")
    kicked = bob.expect("KICK")
    assert kicked.params == ["#dev", "bob", "too loud"]
    carol.expect(r"bob was kicked by alice \(too loud\)|bob was removed from #dev by alice")
    alice.send("MODE #dev +b bob")
    alice.expect("MODE")
    assert joined(bob)[-1].command == "474"
    alice.send("MODE #dev b")
    bans = alice.collect(["368"])
    assert [m.params[2] for m in bans if m.command == "367"] == ["bob"]


def test_non_operator_mode_change_is_482(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    joined(alice)
    bob = irc("bob")
    joined(bob)
    bob.send("MODE #dev +m")
    assert bob.expect("482").params[1] == "#dev"
    bob.send("MODE #dev +z")
    assert bob.expect("472", "482").command in ("472", "482")


def test_moderated_room_refuses_the_voiceless_with_404(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    joined(alice)
    bob = irc("bob")
    joined(bob)
    alice.send("MODE #dev +m")
    alice.expect("MODE")
    bob.send("PRIVMSG #dev :can anyone hear me")
    assert bob.expect("404").params[1] == "#dev"
    alice.send("MODE #dev +v bob")
    alice.expect("MODE")
    bob.send("PRIVMSG #dev :now they can")
    assert alice.expect("PRIVMSG").params == ["#dev", "now they can"]


def test_oper_sees_real_hosts_and_kills(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = irc("alice")
    carol = connect("carol")
    bob = irc("bob")
    bob.send("WHOIS alice")
    assert all(m.command != "378" for m in bob.collect(["318"]))
    bob.send("KILL carol :spam")
    assert bob.expect("481").command == "481"
    bob.send("OPER root wrong")
    assert bob.expect("464").command == "464"
    bob.send(f"OPER root :{OPER_PASSWORD}")
    assert bob.expect("381").command == "381"
    bob.send("WHOIS alice")
    whois = bob.collect(["318"])
    assert "127.0.0.1" in next(m for m in whois if m.command == "378").params[-1]
    alice.send("WHOIS bob")
    assert any(m.command == "313" for m in alice.collect(["318"]))
    bob.send("KILL carol :spam")
    assert any("spam" in line for line in carol.read_until_closed())


def test_a_new_operator_kicks_and_the_room_sees_every_kick(irc: Callable[..., IrcClient]) -> None:
    foo = irc("foo")
    joined(foo, "#chan")
    bar = irc("bar")
    joined(bar, "#chan")
    baz = irc("baz")
    joined(baz, "#chan")
    foo.send("MODE #chan +o baz")
    foo.expect("MODE")
    baz.expect("MODE")
    baz.send_raw(b"KICK #chan bar\r\nKICK #chan foo\r\n")  # one chunk: one turn of the session
    assert [m.params[1] for m in baz.collect(["KICK"]) + baz.collect(["KICK"])] == ["bar", "foo"]
    assert bar.expect("KICK").params[1] == "bar"
    seen = [m.params[1] for m in foo.collect(["KICK"])]
    seen += [m.params[1] for m in foo.collect(["KICK"])] if seen == ["bar"] else []
    assert seen == ["bar", "foo"]


def test_mode_errors_and_creation_time(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    joined(alice)
    alice.send("MODE #dev +k :two words")
    assert alice.expect("696").params[1:4] == ["#dev", "k", "*"]  # a space cannot be echoed
    alice.send("MODE #dev +l -5")
    assert alice.expect("696").params[1:4] == ["#dev", "l", "-5"]
    alice.send("MODE #dev +o nobody")
    assert alice.expect("401").params[1] == "nobody"
    alice.send("MODE #dev")
    assert alice.expect("324").params[1:] == ["#dev", "+nt"]
    assert alice.expect("329").params[2].isdigit()
