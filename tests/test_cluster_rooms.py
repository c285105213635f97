"""Room rules across a cluster: two nodes sharing one real ``redis-server``.

A topic, a ban, a mode or a kick set on one node holds on the other, in
order with the room's lines; a room's creator is decided once.  Every
process started here is killed by PID (the fixtures of ``test_cluster``).
"""

from __future__ import annotations

from collections.abc import Callable

from tests import test_cluster
from tests.helpers import ChatClient
from tests.test_cluster import Nodes

# The fixtures of test_cluster: a real redis-server, nodes sharing it, clients.
redis_server = test_cluster.redis_server
nodes = test_cluster.nodes
clients = test_cluster.clients

Clients = Callable[..., ChatClient]


def _join(client: ChatClient, room: str) -> None:
    client.send(f"/join #{room}")
    client.expect(rf"^\*\*\* you joined #{room}$")


def _sync(client: ChatClient, token: str = "sync") -> None:
    client.send(f"/ping {token}")
    client.expect(rf"^\*\*\* pong {token}$")


def test_topic_mode_and_ban_set_on_one_node_hold_on_the_other(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    bob = clients(two, "bob")
    _join(bob, "dev")
    alice.expect(r"^\*\*\* bob joined #dev$")
    bob.send("/topic mine")  # bob joined a room that existed elsewhere: not its creator
    bob.expect(r"^\*\*\* you are not an operator of #dev$")
    alice.send("/topic release day")
    bob.expect(r"^\*\*\* alice set the topic: release day$")
    bob.send("/topic")
    bob.expect(r"^\*\*\* topic: release day \(set by alice\)$")
    alice.send("/mode +m")
    bob.expect(r"^\*\*\* alice set the modes of #dev: \+m$")
    bob.send("unheard")
    bob.expect(r"^\*\*\* #dev is moderated: you cannot speak$")
    alice.send("/voice bob")
    bob.expect(r"^\*\*\* alice gave bob a voice$")
    bob.send("heard")
    alice.expect(r"^bob: heard$")
    alice.send("/ban spam*")
    bob.expect(r"^\*\*\* alice banned spam\*$")
    spammer = clients(two, "spammer")
    spammer.send("/join #dev")
    spammer.expect(r"^\*\*\* cannot join #dev: you are banned$")


def test_a_ban_set_on_one_node_kicks_a_matching_member_of_the_other(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    spammer = clients(two, "spammer")
    _join(spammer, "dev")
    alice.expect(r"^\*\*\* spammer joined #dev$")
    alice.send("/ban spam*")
    spammer.expect(r"^\*\*\* you were kicked from #dev by alice \(banned\)$")
    spammer.expect(r"^\*\*\* you joined #lobby$")
    alice.expect(r"^\*\*\* spammer was kicked by alice \(banned\)$")


def test_a_user_kicked_from_another_node_is_moved_to_the_lobby(nodes: Nodes, clients: Clients) -> None:
    one, two = nodes(2)
    alice = clients(one, "alice")
    _join(alice, "dev")
    bob, carol = clients(two, "bob"), clients(two, "carol")
    for client in (bob, carol):
        _join(client, "dev")
    alice.expect(r"^\*\*\* carol joined #dev$")
    for i in range(20):
        carol.send(f"before {i}")
    alice.send("/kick bob off topic")
    bob.expect(r"^\*\*\* you were kicked from #dev by alice \(off topic\)$")
    bob.expect(r"^\*\*\* you joined #lobby$")
    carol.expect(r"^\*\*\* bob was kicked by alice \(off topic\)$")
    alice.expect(r"^\*\*\* bob was kicked by alice \(off topic\)$")
    if "carol: before 19" not in alice.lines:
        alice.expect(r"^carol: before 19$")
    said = [line for line in alice.lines if line.startswith("carol: ")]
    assert said == [f"carol: before {i}" for i in range(20)]  # the kick lost none of them
    carol.send("/who")
    # (alice's @ is known on her own node; a node learns a room's rules only from changes it sees)
    carol.expect(r"^\*\*\* 2 users in #dev: @?alice, carol$")
    bob.send("still talking")
    _sync(carol)
    assert not any("still talking" in line for line in carol.lines)
