"""IRC end to end: IRC clients and line (nc) clients in one chat, over real sockets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from irctokens.line import Line

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, wait_until
from tests.irc_client import IrcClient

NAME = "irc.test"


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    return make_server(irc_port=0, server_name=NAME)


def sender(msg: Line) -> str:
    """The nick a message came from."""
    assert msg.source is not None
    return msg.source.split("!")[0]


def joined(client: IrcClient, room: str = "#lobby") -> list[Any]:
    """JOIN ``room`` and read to the end of its NAMES."""
    client.send(f"JOIN {room}")
    return client.collect(["366"])


# -- registration ---------------------------------------------------------------------


def test_registration_sends_welcome_isupport_lusers_and_no_motd(irc: Callable[..., IrcClient]) -> None:
    burst = irc().register("bob")
    codes = [m.command for m in burst]
    for code in ("001", "002", "003", "004", "005", "251", "255", "422"):
        assert code in codes
    welcome = burst[0]
    assert (welcome.source, welcome.command, welcome.params[0]) == (NAME, "001", "bob")
    myinfo = next(m for m in burst if m.command == "004")
    assert myinfo.params[1] == NAME
    tokens = {t.split("=")[0] for m in burst if m.command == "005" for t in m.params[1:-1]}
    assert {"CHANTYPES", "PREFIX", "CHANMODES", "CASEMAPPING", "NICKLEN", "TARGMAX", "UTF8ONLY"} <= tokens


def test_motd_file_is_sent_on_registration(make_server: Callable[..., ChatServer], tmp_path: Path) -> None:
    motd = tmp_path / "motd.txt"
    motd.write_text("Be kind.\nNo spam.\n")
    server = make_server(irc_port=0, server_name=NAME, motd_file=str(motd))
    client = IrcClient(server.irc_addresses[0])
    try:
        burst = client.register("bob")
        assert [m.params[-1] for m in burst if m.command == "372"] == ["- Be kind.", "- No spam."]
        assert burst[-1].command == "376"
    finally:
        client.close()


def test_nick_held_by_a_line_user_or_a_lookalike_is_433(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    bob = irc()
    bob.send("NICK Alice")
    assert bob.expect("433").params[1] == "Alice"
    bob.send("NICK \u0430lice")  # a Cyrillic a
    assert bob.expect("433").command == "433"
    bob.send("NICK bad!nick")
    assert bob.expect("432").command == "432"


def test_commands_before_registration_are_451(irc: Callable[..., IrcClient]) -> None:
    bob = irc()
    bob.send("JOIN #lobby")
    assert bob.expect("451").command == "451"


def test_unknown_command_is_421_and_missing_parameters_461(irc: Callable[..., IrcClient]) -> None:
    bob = irc("bob")
    bob.send("FROBNICATE x")
    assert bob.expect("421").params[1] == "FROBNICATE"
    bob.send("JOIN")
    assert bob.expect("461").params[1] == "JOIN"


def test_server_password_is_checked_with_pass(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(irc_port=0, server_name=NAME, password="sesame", password_delay=0)
    wrong = IrcClient(server.irc_addresses[0])
    right = IrcClient(server.irc_addresses[0])
    try:
        wrong.send("PASS guess")
        wrong.send("NICK bob")
        wrong.send("USER bob 0 * :Bob")
        assert wrong.expect("464").command == "464"
        assert wrong.expect("ERROR").command == "ERROR"
        assert wrong.eof() == []
        assert right.register("carol", password="sesame")[0].command == "001"
    finally:
        wrong.close()
        right.close()


def test_cap_negotiation_holds_registration_until_cap_end(irc: Callable[..., IrcClient]) -> None:
    bob = irc()
    bob.send("CAP LS 302")
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    ls = bob.expect("CAP")
    assert "server-time" in ls.params[2].split()
    bob.send("CAP REQ :server-time echo-message")
    assert bob.expect("CAP").params[1] == "ACK"
    bob.send("CAP LIST")
    listed = bob.expect("CAP")
    assert {"server-time", "echo-message"} <= set(listed.params[2].split())
    assert all(m.command != "001" for m in bob.messages)
    bob.send("CAP END")
    assert bob.expect("001").command == "001"


def test_labeled_commands_get_labeled_replies(irc: Callable[..., IrcClient]) -> None:
    bob = irc("bob", ("labeled-response", "batch"))
    bob.send("@label=one PING x")
    pong = bob.expect("PONG")
    assert pong.tags == {"label": "one"}
    bob.send("@label=two PONG x")
    assert bob.expect("ACK").tags == {"label": "two"}
    bob.send("@label=three JOIN #dev")
    start = bob.read()
    assert (start.command, start.tags) == ("BATCH", {"label": "three"})
    ref = start.params[0][1:]
    inside = bob.collect(["BATCH"])
    assert [m.command for m in inside] == ["JOIN", "353", "366", "BATCH"]
    assert all(m.tags == {"batch": ref} for m in inside[:-1])


def test_ping_is_answered_in_order(irc: Callable[..., IrcClient]) -> None:
    bob = irc("bob")
    bob.send("PING :abc def")
    pong = bob.expect("PONG")
    assert (pong.source, pong.params) == (NAME, [NAME, "abc def"])


# -- one chat with line users -----------------------------------------------------------------


def test_irc_user_is_in_no_room_until_join(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    bob = irc("bob")
    alice.send("before the join")
    assert all(m.command != "PRIVMSG" for m in bob.sync())
    names = joined(bob)
    assert names[0].command == "JOIN"
    assert names[0].source.startswith("bob!")
    nicks = next(m for m in names if m.command == "353").params[-1].split()
    assert sorted(nicks) == ["alice", "bob"]
    alice.expect(r"^\*\*\* bob joined #lobby$")


def test_chat_goes_both_ways(irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]) -> None:
    alice = connect("alice")
    bob = irc("bob")
    joined(bob)
    bob.send("PRIVMSG #lobby :hello from irc")
    alice.expect(r"^bob: hello from irc$")
    alice.send("hello from nc")
    msg = bob.expect("PRIVMSG")
    assert (msg.source, msg.params) == (f"alice!alice@{NAME}", ["#lobby", "hello from nc"])


def test_privmsg_to_two_rooms_reaches_both(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    joined(alice, "#a")
    joined(alice, "#b")
    bob = irc("bob")
    joined(bob, "#a")
    joined(bob, "#b")
    bob.send("PRIVMSG #a,#b :to both")
    assert [alice.expect("PRIVMSG").params[0] for _ in range(2)] == ["#a", "#b"]


def test_actions_are_the_same_both_ways(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    bob = irc("bob")
    joined(bob)
    bob.send("PRIVMSG #lobby :\x01ACTION waves\x01")
    alice.expect(r"^\* bob waves$")
    alice.send("/me nods")
    assert bob.expect("PRIVMSG").params == ["#lobby", "\x01ACTION nods\x01"]


def test_private_messages_go_both_ways(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    bob = irc("bob")
    bob.send("PRIVMSG alice :psst")
    alice.expect(r"^\*bob\* psst$")
    alice.send("/msg bob hey you")
    msg = bob.expect("PRIVMSG")
    assert (sender(msg), msg.params) == ("alice", ["bob", "hey you"])


def test_nick_change_and_quit_reach_line_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    bob = irc("bob")
    joined(bob)
    bob.send("NICK bobby")
    nick = bob.expect("NICK")
    assert (sender(nick), nick.params) == ("bob", ["bobby"])
    alice.expect(r"^\*\*\* bob is now known as bobby$")
    bob.send("QUIT :gone fishing")
    assert bob.expect("ERROR").command == "ERROR"
    alice.expect(r"^\*\*\* bobby left \(Quit: gone fishing\)$")


def test_line_users_joins_parts_and_quits_reach_irc_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    bob = irc("bob")
    joined(bob)
    alice = connect("alice")
    assert sender(bob.expect("JOIN")) == "alice"
    alice.send("/quit bye")
    quit_ = bob.expect("QUIT")
    assert (sender(quit_), quit_.params) == ("alice", ["bye"])


def test_part_of_a_room_one_is_not_in_is_442_and_unknown_is_403(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    bob = irc("bob")
    bob.send("PART #lobby")
    assert bob.expect("442").params[1] == "#lobby"
    bob.send("PART #nowhere")
    assert bob.expect("403").params[1] == "#nowhere"


def test_message_errors_are_numerics(irc: Callable[..., IrcClient]) -> None:
    bob = irc("bob")
    bob.send("PRIVMSG nobody :hi")
    assert bob.expect("401").params[1] == "nobody"
    bob.send("PRIVMSG #nowhere :hi")
    assert bob.expect("403").params[1] == "#nowhere"
    bob.send("PRIVMSG")
    assert bob.expect("411").command == "411"
    bob.send("PRIVMSG alice")
    assert bob.expect("412").command == "412"


def test_text_is_sanitised_as_for_line_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    bob = irc("bob")
    joined(bob)
    bob.send_raw(b"PRIVMSG #lobby :\x1b[31mred\xff \xe2\x80\xaeevil\r\n")
    alice.expect("^bob: red\ufffd evil$")
    warn = bob.expect("WARN")
    assert warn.params[:2] == ["PRIVMSG", "INVALID_UTF8"]


def test_user_with_an_empty_realname_is_461(irc: Callable[..., IrcClient]) -> None:
    bob = irc()
    bob.send("NICK bob")
    bob.send("USER bob 0 * :")
    assert bob.expect("461").params[1] == "USER"


def test_who_by_mask_lists_matching_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    bob = irc("bob")
    bob.send("WHO AL*")
    who = bob.collect(["315"])
    assert [m.params[5] for m in who if m.command == "352"] == ["alice"]
    assert who[-1].params[1] == "AL*"
    bob.send("NAMES nothing")
    assert bob.expect("366").params[1] == "nothing"


def test_overlong_line_is_417_and_the_client_stays(irc: Callable[..., IrcClient]) -> None:
    bob = irc("bob")
    bob.send("PRIVMSG #a :" + "x" * 600)
    assert bob.expect("417").command == "417"
    bob.send("PING still")
    assert bob.expect("PONG").params[-1] == "still"


def test_echo_message_and_server_time(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    bob = irc("bob", ("echo-message", "server-time"))
    joined(bob)
    bob.send("PRIVMSG #lobby :echoed")
    echo = bob.expect("PRIVMSG")
    assert echo.params == ["#lobby", "echoed"]
    assert echo.tags is not None
    assert echo.tags["time"].endswith("Z")


def test_room_history_on_join_is_a_batch_with_original_times(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    alice = connect("alice")
    alice.send("first")
    alice.send("second")
    alice.send("/ping")
    alice.expect("pong")
    bob = irc("bob", ("batch", "server-time"))
    got = joined(bob) + bob.sync()
    start = next(m for m in got if m.command == "BATCH")
    assert start.params[0].startswith("+")
    assert start.params[1:] == ["chathistory", "#lobby"]
    said = [m for m in got if m.command == "PRIVMSG"]
    assert [m.params[-1] for m in said] == ["first", "second"]
    batch = start.params[0][1:]
    assert all(m.tags is not None and m.tags["batch"] == batch and "time" in m.tags for m in said)
    assert any(m.command == "BATCH" and m.params == [f"-{batch}"] for m in got)


# -- queries -------------------------------------------------------------------------------


def test_whois_who_ison_and_userhost(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    bob = irc("bob")
    joined(bob)
    bob.send("WHOIS alice")
    whois = bob.collect(["318"])
    assert next(m for m in whois if m.command == "311").params[1] == "alice"
    assert "#lobby" in next(m for m in whois if m.command == "319").params[-1]
    bob.send("WHO #lobby")
    who = bob.collect(["315"])
    assert sorted(m.params[5] for m in who if m.command == "352") == ["alice", "bob"]
    bob.send("ISON alice nobody bob")
    assert bob.expect("303").params[-1].split() == ["alice", "bob"]
    bob.send("USERHOST alice")
    assert bob.expect("302").params[-1].startswith("alice=+")


def test_away_is_told_to_whoever_messages(irc: Callable[..., IrcClient]) -> None:
    bob = irc("bob")
    carol = irc("carol")
    bob.send("AWAY :lunch")
    assert bob.expect("306").command == "306"
    carol.send("PRIVMSG bob :there?")
    assert carol.expect("301").params[1:] == ["bob", "lunch"]
    bob.send("AWAY")
    assert bob.expect("305").command == "305"


def test_away_notify_tells_room_mates_that_asked(irc: Callable[..., IrcClient]) -> None:
    carol = irc("carol", ("away-notify",))
    joined(carol, "#dev")
    bob = irc("bob")
    bob.send("AWAY :brb")
    bob.expect("306")
    joined(bob, "#dev")
    away = carol.expect("AWAY")
    assert (sender(away), away.params) == ("bob", ["brb"])
    bob.send("AWAY")
    assert carol.expect("AWAY").params == []


def test_setname_changes_the_real_name_for_those_that_asked(irc: Callable[..., IrcClient]) -> None:
    carol = irc("carol", ("setname",))
    dave = irc("dave")
    joined(carol, "#dev")
    joined(dave, "#dev")
    bob = irc("bob", ("setname",))
    joined(bob, "#dev")
    bob.send("SETNAME :Robert Tables")
    assert bob.expect("SETNAME").params == ["Robert Tables"]
    told = carol.expect("SETNAME")
    assert (sender(told), told.params) == ("bob", ["Robert Tables"])
    assert all(m.command != "SETNAME" for m in dave.sync())
    dave.send("WHOIS bob")
    assert dave.expect("311").params[-1] == "Robert Tables"


def test_list_and_names_show_rooms_of_line_users(
    irc: Callable[..., IrcClient], connect: Callable[..., ChatClient]
) -> None:
    connect("alice")
    bob = irc("bob")
    bob.send("LIST")
    rooms = bob.collect(["323"])
    assert [m.params[1:3] for m in rooms if m.command == "322"] == [["#lobby", "1"]]
    bob.send("NAMES #lobby")
    assert bob.expect("353").params[-1] == "alice"


def test_whowas_remembers_who_left(server: ChatServer, irc: Callable[..., IrcClient]) -> None:
    carol = irc("carol")
    bob = irc("bob")
    carol.send("QUIT")
    carol.eof()
    wait_until(lambda: server.registry.get("carol") is None, what="carol gone")
    bob.send("WHOWAS carol")
    got = bob.collect(["369"])
    assert [m.params[1] for m in got if m.command == "314"] == ["carol"]
