"""End-to-end: room rules over real sockets (topics, operators, modes, kicks, bans, invites).

Every command is tried by a TCP user; the ones that reach another user are
also seen by a WebSocket user, who must get the same lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gevent_chat.core import opers
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, sample
from tests.ws_client import WsClient

Connect = Callable[..., ChatClient]

OPER_PASSWORD = "correct horse"
OPER_HASH = opers.hash_password(OPER_PASSWORD, bytes(range(16)))


@pytest.fixture
def server(make_server: Callable[..., ChatServer], tmp_path: Path) -> ChatServer:
    path = tmp_path / "opers"
    path.write_text(f"# the operators\nroot {OPER_HASH}\n")
    return make_server(web_port=0, opers_file=str(path), max_password_failures=3)


@pytest.fixture
def ws(server: ChatServer) -> Iterator[Callable[[str], WsClient]]:
    opened: list[WsClient] = []

    def open_ws(nick: str) -> WsClient:
        client = WsClient(server.web_address)
        opened.append(client)
        client.register(nick)
        return client

    yield open_ws
    for client in opened:
        client.close()


def sync(client: ChatClient | WsClient, token: str = "sync") -> list[str]:
    """Round-trip /ping: the lines that arrived before the pong."""
    start = len(client.lines)
    client.send(f"/ping {token}")
    client.expect(rf"^\*\*\* pong {re.escape(token)}$")
    return client.lines[start:-1]


def join(client: ChatClient | WsClient, room: str, key: str = "") -> None:
    client.send(f"/join #{room} {key}".rstrip())
    client.expect(rf"^\*\*\* you joined #{room}$")


def in_dev(connect: Connect, *nicks: str) -> list[ChatClient]:
    """Users in #dev, the first its creator (and so its operator)."""
    clients = [connect(nick) for nick in nicks]
    for client in clients:
        join(client, "dev")
    sync(clients[0])
    return clients


def oper(client: ChatClient | WsClient) -> None:
    client.send(f"/oper root {OPER_PASSWORD}")
    client.expect(r"^\*\*\* you are now a server operator$")


# -- topics ---------------------------------------------------------------------------


def test_the_topic_is_set_seen_by_the_room_and_shown_to_joiners(connect: Connect, ws: Any) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    alice.send("/topic")
    alice.expect(r"^\*\*\* #dev has no topic$")
    alice.send("/topic release day \x1b[31mtoday")
    alice.expect(r"^\*\*\* alice set the topic: release day today$")
    bob.expect(r"^\*\*\* alice set the topic: release day today$")
    carol = ws("carol")
    carol.send("/join #dev")
    carol.expect(r"^\*\*\* you joined #dev$")
    carol.expect(r"^\*\*\* topic: release day today \(set by alice\)$")
    bob.send("/topic")
    bob.expect(r"^\*\*\* topic: release day today \(set by alice\)$")


def test_only_an_operator_sets_the_topic_unless_minus_t(connect: Connect) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    bob.send("/topic mine")
    bob.expect(r"^\*\*\* you are not an operator of #dev$")
    alice.send("/mode -t")
    bob.expect(r"^\*\*\* alice set the modes of #dev: -t$")
    bob.send("/topic mine")
    alice.expect(r"^\*\*\* bob set the topic: mine$")


def test_an_emptied_room_forgets_its_topic_and_its_next_creator_runs_it(connect: Connect) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    alice.send("/topic old news")
    bob.expect(r"set the topic: old news")
    for client in (alice, bob):
        join(client, "lobby")
    join(bob, "dev")
    assert sync(bob) == []  # no topic shown
    bob.send("/topic fresh")
    bob.expect(r"^\*\*\* bob set the topic: fresh$")


# -- operators and voices ---------------------------------------------------------------


def test_op_deop_voice_devoice_are_seen_by_the_room(connect: Connect, ws: Any) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    carol = ws("carol")
    join(carol, "dev")
    alice.send("/op bob")
    for client in (alice, bob, carol):
        client.expect(r"^\*\*\* alice made bob an operator$")
    bob.send("/voice carol")
    carol.expect(r"^\*\*\* bob gave carol a voice$")
    bob.send("/devoice carol")
    carol.expect(r"^\*\*\* bob took carol's voice$")
    alice.send("/deop bob")
    carol.expect(r"^\*\*\* alice removed bob as an operator$")
    bob.send("/voice carol")
    bob.expect(r"^\*\*\* you are not an operator of #dev$")


def test_who_marks_operators_and_voiced_members(connect: Connect) -> None:
    alice, _bob, _carol = in_dev(connect, "alice", "bob", "carol")
    alice.send("/voice carol")
    alice.expect(r"gave carol a voice")
    alice.send("/who")
    alice.expect(r"^\*\*\* 3 users in #dev: @alice, bob, \+carol$")


def test_op_names_a_member_of_the_room(connect: Connect) -> None:
    (alice,) = in_dev(connect, "alice")
    connect("zed")
    alice.send("/op zed")
    alice.expect(r"^\*\*\* zed is not in #dev$")


# -- kicks ------------------------------------------------------------------------------


def test_a_kicked_user_is_told_and_moved_to_the_lobby(connect: Connect, ws: Any) -> None:
    alice, carol = in_dev(connect, "alice", "carol")
    bob = ws("bob")
    join(bob, "dev")
    alice.send("/kick bob spamming links")
    alice.expect(r"^\*\*\* bob was kicked by alice \(spamming links\)$")
    carol.expect(r"^\*\*\* bob was kicked by alice \(spamming links\)$")
    bob.expect(r"^\*\*\* you were kicked from #dev by alice \(spamming links\)$")
    bob.expect(r"^\*\*\* you joined #lobby$")
    bob.send("still here")
    carol.send("after the kick")
    alice.expect(r"^carol: after the kick$")
    assert not any("still here" in line for line in sync(carol))
    carol.send("/who")
    carol.expect(r"^\*\*\* 2 users in #dev: @alice, carol$")


def test_a_kick_loses_no_line_said_around_it(connect: Connect) -> None:
    alice, bob, carol = in_dev(connect, "alice", "bob", "carol")
    for i in range(50):
        carol.send(f"line {i}")
    alice.send("/kick bob")
    for i in range(50, 100):
        carol.send(f"line {i}")
    bob.expect(r"^\*\*\* you were kicked from #dev by alice$")
    for client in (alice, carol):
        sync(client)
    said = [line for line in alice.lines if line.startswith("carol: ")]
    assert said == [f"carol: line {i}" for i in range(100)]
    assert "*** bob was kicked by alice" in alice.lines
    assert "*** bob was kicked by alice" in carol.lines


def test_only_an_operator_kicks_and_only_members(connect: Connect) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    bob.send("/kick alice")
    bob.expect(r"^\*\*\* you are not an operator of #dev$")
    alice.send("/kick nobody")
    alice.expect(r"^\*\*\* nobody is not in #dev$")
    alice.send("/kick")
    alice.expect(r"^\*\*\* usage: /kick NICK \[REASON\]")


def test_nobody_is_kicked_from_the_lobby(connect: Connect) -> None:
    alice, _bob = connect("alice"), connect("bob")
    oper(alice)
    alice.send("/kick bob")
    alice.expect(r"^\*\*\* nobody is kicked from #lobby")


# -- bans -------------------------------------------------------------------------------


def test_a_ban_kicks_matching_members_and_keeps_them_out(connect: Connect, ws: Any) -> None:
    alice, carol = in_dev(connect, "alice", "carol")
    spammer = ws("Spammer1")
    join(spammer, "dev")
    alice.send("/ban spam*")
    carol.expect(r"^\*\*\* alice banned spam\*$")
    carol.expect(r"^\*\*\* Spammer1 was kicked by alice \(banned\)$")
    spammer.expect(r"^\*\*\* you were kicked from #dev by alice \(banned\)$")
    spammer.expect(r"^\*\*\* you joined #lobby$")
    spammer.send("/join #dev")
    spammer.expect(r"^\*\*\* cannot join #dev: you are banned$")
    alice.send("/bans")
    alice.expect(r"^\*\*\* 1 ban in #dev: spam\* \(by alice\)$")
    alice.send("/unban SPAM*")
    carol.expect(r"^\*\*\* alice lifted the ban on spam\*$")
    join(spammer, "dev")


def test_an_address_ban_matches_the_client_address(
    server: ChatServer, connect: Connect, dial: Callable[..., ChatClient]
) -> None:
    (alice,) = in_dev(connect, "alice")
    alice.send("/ban *@127.0.0.2")
    alice.expect(r"alice banned")
    other = dial(server.address, source="127.0.0.2")
    other.register("innocent")
    other.send("/join #dev")
    other.expect(r"^\*\*\* cannot join #dev: you are banned$")


@pytest.mark.parametrize("mask", ["a b", "bob\x1b[2J", "*@host/path", "x" * 101])
def test_a_bad_mask_is_refused_and_changes_nothing(connect: Connect, mask: str) -> None:
    (alice,) = in_dev(connect, "alice")
    alice.send(f"/ban {mask}")
    alice.expect(r"^\*\*\* invalid mask: ")
    alice.send("/bans")
    alice.expect(r"^\*\*\* no bans in #dev$")


# -- modes, keys, invites, limits -------------------------------------------------------


def test_mode_shows_and_sets_the_room_modes(connect: Connect) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    bob.send("/mode")
    bob.expect(r"^\*\*\* #dev modes: \+nt$")
    alice.send("/mode +m +l 50")
    bob.expect(r"^\*\*\* alice set the modes of #dev: \+m \+l 50$")
    bob.send("/mode")
    bob.expect(r"^\*\*\* #dev modes: \+mntl 50$")
    bob.send("/mode -m")
    bob.expect(r"^\*\*\* you are not an operator of #dev$")
    alice.send("/mode +x")
    alice.expect(r"^\*\*\* unknown mode: x")


def test_in_a_moderated_room_only_voiced_members_are_heard(connect: Connect, ws: Any) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    carol = ws("carol")
    join(carol, "dev")
    alice.send("/mode +m")
    carol.expect(r"set the modes of #dev: \+m$")
    bob.send("can anyone hear me")
    bob.expect(r"^\*\*\* #dev is moderated: you cannot speak$")
    carol.send("/me waves")
    carol.expect(r"^\*\*\* #dev is moderated: you cannot speak$")
    alice.send("/voice bob")
    bob.expect(r"gave bob a voice")
    bob.send("now I can")
    carol.expect(r"^bob: now I can$")
    assert not any("hear me" in line or "waves" in line for line in sync(alice) + carol.lines)


def test_a_keyed_room_needs_its_key(connect: Connect) -> None:
    (alice,) = in_dev(connect, "alice")
    bob = connect("bob")
    alice.send("/mode +k s3cret")
    alice.expect(r"set the modes of #dev: \+k s3cret$")
    bob.send("/join #dev")
    bob.expect(r"^\*\*\* cannot join #dev: bad key$")
    bob.send("/join #dev wrong")
    bob.expect(r"^\*\*\* cannot join #dev: bad key$")
    join(bob, "dev", "s3cret")
    alice.send("/mode -k")
    bob.expect(r"set the modes of #dev: -k$")


def test_an_invite_only_room_admits_the_invited_once(connect: Connect, ws: Any) -> None:
    (alice,) = in_dev(connect, "alice")
    bob = ws("bob")
    alice.send("/mode +i")
    alice.expect(r"\+i$")
    bob.send("/join #dev")
    bob.expect(r"^\*\*\* cannot join #dev: invite only$")
    alice.send("/invite bob")
    alice.expect(r"^\*\*\* you invited bob to #dev$")
    bob.expect(r"^\*\*\* alice invites you to #dev$")
    join(bob, "dev")
    join(bob, "lobby")
    bob.send("/join #dev")
    bob.expect(r"^\*\*\* cannot join #dev: invite only$")


def test_a_full_room_refuses_one_more(connect: Connect) -> None:
    alice, _bob = in_dev(connect, "alice", "bob")
    alice.send("/mode +l 2")
    alice.expect(r"\+l 2$")
    carol = connect("carol")
    carol.send("/join #dev")
    carol.expect(r"^\*\*\* cannot join #dev: room is full$")


def test_rooms_shows_topics_and_hides_secret_rooms_from_outsiders(connect: Connect) -> None:
    alice, _ = in_dev(connect, "alice", "bob")
    alice.send("/topic all about dev")
    alice.expect("set the topic")
    carol = connect("carol")
    join(carol, "hideout")
    carol.send("/mode +s")
    carol.expect(r"\+s$")
    alice.send("/rooms")
    alice.expect(r"^\*\*\* 1 room: #dev \(2\)$")
    alice.expect(r"^\*\*\* #dev: all about dev$")
    carol.send("/rooms")
    carol.expect(r"^\*\*\* 2 rooms: #dev \(2\), #hideout \(1\)$")


# -- server operators ---------------------------------------------------------------------


def test_a_server_operator_runs_every_room(connect: Connect) -> None:
    alice, bob = in_dev(connect, "alice", "bob")
    bob.send("/oper root wrong")
    bob.expect(r"^\*\*\* wrong operator name or password$")
    oper(bob)
    bob.send("/topic the server says")
    alice.expect(r"^\*\*\* bob set the topic: the server says$")
    bob.send("/deop alice")
    alice.expect(r"^\*\*\* bob removed alice as an operator$")


def test_oper_failures_use_up_the_address_password_budget(connect: Connect) -> None:
    bob = connect("bob")
    for _ in range(3):
        bob.send("/oper root guess")
        bob.expect(r"^\*\*\* wrong operator name or password$")
    bob.send(f"/oper root {OPER_PASSWORD}")
    bob.expect(r"^\*\*\* too many failed attempts from your address; try again later$")


def test_the_oper_password_never_reaches_the_log(
    spawn_server: Callable[..., Any], tmp_path: Path, dial: Callable[..., ChatClient]
) -> None:
    path = tmp_path / "opers"
    path.write_text(f"root {OPER_HASH}\n")
    proc = spawn_server("--opers-file", str(path), "--log-level", "debug")
    bob = dial(proc.wait_listening())
    bob.register("bob")
    bob.send("/oper root wrong-secret-1")
    bob.expect("wrong operator")
    oper(bob)
    bob.send("/quit")
    bob.read_until_closed()
    proc.kill()
    log = proc.log_text()
    assert "ran /oper" in log
    assert "wrong-secret-1" not in log
    assert OPER_PASSWORD not in log


def test_kill_disconnects_with_the_reason(connect: Connect, ws: Any) -> None:
    root, carol = connect("root"), connect("carol")
    bob = ws("bob")
    carol.send("/kill bob")
    carol.expect(r"^\*\*\* you are not a server operator$")
    oper(root)
    root.send("/kill bob flooding")
    bob.expect(r"^\*\*\* you were disconnected by an operator \(flooding\)$")
    bob.read_until_close()
    carol.expect(r"^\*\*\* bob left \(disconnected by an operator: flooding\)$")
    root.send("/kill nobody")
    root.expect(r"^\*\*\* no such user: nobody$")


def test_gban_disconnects_matching_users_and_refuses_them_at_registration(
    server: ChatServer, connect: Connect, dial: Callable[..., ChatClient]
) -> None:
    root = connect("root")
    oper(root)
    bob = dial(server.address, source="127.0.0.2")
    bob.register("bob")
    root.send("/gban *@127.0.0.2 spam bots")
    bob.expect(r"^\*\*\* you are banned from this server \(spam bots\)$")
    bob.read_until_closed()
    root.expect(r"^\*\*\* banned \*@127\.0\.0\.2 from the server; 1 user disconnected$")
    again = dial(server.address, source="127.0.0.2")
    again.expect_prompt()
    again.send("bobby")
    again.expect(r"^\*\*\* you are banned from this server \(spam bots\)$")
    again.read_until_closed()
    root.send("/gbans")
    root.expect(r"^\*\*\* 1 server ban: \*@127\.0\.0\.2 \(by root: spam bots\)$")
    root.send("/gunban *@127.0.0.2")
    root.expect(r"^\*\*\* lifted the server ban on \*@127\.0\.0\.2$")
    dial(server.address, source="127.0.0.2").register("bobby")


def test_server_operator_commands_are_refused_to_others(connect: Connect) -> None:
    bob = connect("bob")
    for command in ("/gban x", "/gunban x", "/gbans", "/kill x"):
        bob.send(command)
        bob.expect(r"^\*\*\* you are not a server operator$")


# -- help ---------------------------------------------------------------------------------


def test_help_lists_the_room_commands_and_explains_one(connect: Connect) -> None:
    alice = connect("alice")
    alice.send("/help")
    lines = sync(alice)
    for name in ("topic", "op", "deop", "voice", "devoice", "kick", "ban", "unban", "bans", "mode", "invite"):
        assert any(re.match(rf"\*\*\* /{name}[ :]", line) for line in lines), name
    for name in ("oper", "kill", "gban", "gunban", "gbans"):
        assert any(line.startswith(f"*** /{name}") for line in lines), name
    alice.send("/help kick")
    alice.expect(r"^\*\*\* /kick NICK \[REASON\]: ")
    alice.send("/help nosuch")
    alice.expect(r"^\*\*\* no such command: /nosuch")


def test_room_commands_are_paced_like_chat_lines_and_none_is_lost(
    make_server: Callable[..., ChatServer], dial: Callable[..., ChatClient]
) -> None:
    server = make_server(rate_limit=40, rate_burst=10)
    alice, bob = dial(server.address), dial(server.address)
    alice.register("alice")
    bob.register("bob")
    for client in (alice, bob):
        join(client, "dev")
    n = 50  # 10 at once, then 40 at 40/s: about 1 s
    start = time.monotonic()
    alice.send_raw(b"".join(b"/topic take %d\n" % i for i in range(n)))
    seen = [bob.expect(rf"^\*\*\* alice set the topic: take {i}$").string for i in range(n)]
    elapsed = time.monotonic() - start
    assert len(seen) == n  # every one applied, in order
    assert elapsed >= 0.7, f"the commands were not paced: done in {elapsed:.2f} s"
    assert sample(server, "gevent_chat_flood_throttles_total") > 0
