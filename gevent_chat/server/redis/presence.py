"""Who is in which room on every node, and which nodes are alive.

SHELL.  Each room has a HASH ``who`` (folded nick -> ``<node> <nick>``, in
the room's hash slot) and the cluster a HASH of rooms that have or had
users.  Each node keeps its own users in memory (the truth for its part) and
writes them through; what could not be written during an outage is written
by ``resync`` when Redis is back.

Liveness is a ZSET of node -> expiry on the Redis clock, renewed by
``heartbeat`` every ``ttl / 3`` seconds.  Readers (``who``, ``rooms``) skip
the entries of nodes whose expiry has passed, so a node killed with SIGKILL
disappears from ``/who`` within ``ttl``.  The next heartbeat of any node
sees it expired and moves it (``scripts.REAP``, only if it is still
expired) to a set of nodes being reaped; beating nodes remove the entries of
every node in that set, each user once (a compare-and-delete), so each
departure is announced exactly once, and a reaper cut off halfway leaves the
rest to the next beat.  After a stall of Redis longer than
the ttl, or from a node whose own expiry had passed, nobody is reaped until
every live node has had time to beat again (see ``scripts.HEARTBEAT``).  A node that
finds itself missing from the ZSET (Redis restarted, or it was paused past
its ttl and reaped) writes all its users again.

The same two moments clean the rooms' meta hashes, where each node that
published in a room keeps its last sequence number (``n:<node>``, see
``scripts.PUBLISH``): a node removes its own fields when it stops (``clear``),
and the reaper removes the dead node's.  Both find the rooms through the rooms
index, which therefore lists every room a node published in, not only the
rooms its users are in now (``published_in``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

from ...core.protocol import name_key
from . import scripts
from .keys import Keys
from .link import BACKOFF_MAX_SECONDS, FAILURES, Link

__all__ = ["Presence"]

log = logging.getLogger("gevent_chat.redis")


class Presence:
    """This node's users in Redis, and the cluster-wide views of them."""

    def __init__(self, link: Link, keys: Keys, node: str, ttl: float) -> None:
        self.link, self.keys, self.node, self.ttl = link, keys, node, ttl
        self.local: dict[tuple[str, str], tuple[str, str]] = {}  # (folded nick, folded room) -> (nick, room)
        self._unsent_leaves: dict[tuple[str, str], str] = {}  # (folded nick, room) -> value
        #: Rooms this node has published in (as spelled) -> folded: where its ``n:`` fields are.
        self.published: dict[str, str] = {}
        self._leave_script = link.script(scripts.LEAVE)
        self._heartbeat = link.script(scripts.HEARTBEAT)
        self._reap_expired = link.script(scripts.REAP)
        self._live = link.script(scripts.LIVE_NODES)

    def _leave(self, room: str, folded: str, value: str) -> int:
        """Remove the entry ``folded`` -> ``value`` of ``room`` if it is ours (``scripts.LEAVE``)."""
        keys = [self.keys.who(room), self.keys.rules(room), self.keys.meta(room)]
        return cast("int", self._leave_script(keys=keys, args=[folded, value]))

    def _value(self, nick: str) -> str:
        return f"{self.node} {nick}"

    def join(self, nick: str, room: str) -> None:
        """``nick`` (a user of this node) is now in ``room``; never waits when Redis is down."""
        folded = name_key(nick)
        self.local[(folded, name_key(room))] = (nick, room)
        self._unsent_leaves.pop((folded, name_key(room)), None)
        if self.link.is_up:
            try:
                pipe = self.link.client.pipeline(transaction=False)
                pipe.hset(self.keys.who(room), folded, self._value(nick))
                pipe.hdel(self.keys.rules(room), f"inv:{folded}")  # an invitation is for one join
                pipe.hsetnx(self.keys.rooms, name_key(room), room)
                pipe.execute()
            except FAILURES as exc:
                self.link.failed(exc)

    def leave(self, nick: str, room: str) -> str | None:
        """``nick`` left ``room`` (and maybe the server); returns the room as spelled, None if unknown."""
        folded = name_key(nick)
        found = self.local.pop((folded, name_key(room)), None)
        if found is None:
            return None
        _, room = found
        self._unsent_leaves[(folded, name_key(room))] = self._value(nick)
        self._send_leaves({(folded, name_key(room)): room})
        return room

    def _send_leaves(self, rooms: dict[tuple[str, str], str]) -> None:
        if not self.link.is_up:
            return
        try:
            for (folded, froom), room in rooms.items():
                value = self._unsent_leaves.get((folded, froom))
                if value is not None:
                    self._leave(room, folded, value)
                    self._unsent_leaves.pop((folded, froom), None)
        except FAILURES as exc:
            self.link.failed(exc)

    def published_in(self, rooms: Iterable[str]) -> None:
        """This node is about to publish in ``rooms``: index the new ones; raises on failure.

        A room whose users came and went while Redis was away is in no index
        otherwise, and a reaper would never find this node's field there.
        """
        fresh = {room: name_key(room) for room in rooms if room not in self.published}
        if fresh:
            self._index(fresh)
            self.published.update(fresh)

    def _index(self, rooms: dict[str, str]) -> None:
        pipe = self.link.client.pipeline(transaction=False)
        for room, folded in rooms.items():
            pipe.hsetnx(self.keys.rooms, folded, room)
        pipe.execute()

    def resync(self) -> None:
        """Write every local user again and send the leaves an outage held back; raises on failure."""
        for (folded, froom), value in list(self._unsent_leaves.items()):
            self._leave(froom, folded, value)
            del self._unsent_leaves[(folded, froom)]
        pipe = self.link.client.pipeline(transaction=False)
        for (folded, _), (nick, room) in self.local.items():
            pipe.hset(self.keys.who(room), folded, self._value(nick))
            pipe.hsetnx(self.keys.rooms, name_key(room), room)
        pipe.execute()

    def heartbeat(self) -> list[tuple[str, str]]:
        """Renew this node; reap expired ones.  Returns the (room, nick) pairs reaped.

        Raises what redis-py raises when Redis fails.
        """
        calm = self.ttl + 2 * BACKOFF_MAX_SECONDS  # long enough for every live node to beat again
        beat = self._heartbeat(
            keys=[self.keys.nodes, self.keys.beats, self.keys.reaping],
            args=[self.node, int(self.ttl * 1000), int(calm * 1000)],
        )
        result = cast("list[int | bytes]", beat)
        if result[0]:  # we were not listed: first beat, Redis restarted, or we were reaped
            self.resync()
            if self.published:
                self._index(self.published)  # if Redis lost the index, the next reaper needs it
        else:  # keep every room a local user is in on the rooms index (the reaper's map), cheaply
            pipe = self.link.client.pipeline(transaction=False)
            for _, room in self.local.values():
                pipe.hsetnx(self.keys.rooms, name_key(room), room)
            pipe.execute()
        for dead in result[1:]:
            if isinstance(dead, bytes):
                self._reap_expired(keys=[self.keys.nodes, self.keys.reaping], args=[dead])
        # Reap what this beat found dead, and what a reaper cut off halfway left.
        # Any node may run this at once with another: ``scripts.LEAVE`` removes each
        # user once, so each departure is still announced once.
        departed: list[tuple[str, str]] = []
        for dead in cast("set[bytes]", self.link.client.smembers(self.keys.reaping)):
            departed += self._reap(dead.decode())
            self.link.client.srem(self.keys.reaping, dead)
        return departed

    def _reap(self, node: str) -> list[tuple[str, str]]:
        """Remove every entry of the dead ``node``; returns them as (room, nick)."""
        rooms = [
            raw.decode()
            for raw in cast("dict[bytes, bytes]", self.link.client.hgetall(self.keys.rooms)).values()
        ]
        pipe = self.link.client.pipeline(transaction=False)
        for room in rooms:
            pipe.hgetall(self.keys.who(room))
        everyone = cast("list[dict[bytes, bytes]]", pipe.execute())  # one round trip for all rooms
        prefix = f"{node} ".encode()
        departed = []
        for room, users in zip(rooms, everyone, strict=True):
            for folded, value in users.items():
                if value.startswith(prefix) and self._leave(room, folded.decode(), value.decode()):
                    departed.append((room, value[len(prefix) :].decode()))
        self._forget_sequences(node, rooms)
        if departed:
            log.info("server %s stopped answering; %d user(s) removed", node, len(departed))
        return departed

    def _forget_sequences(self, node: str, rooms: Iterable[str]) -> None:
        """Remove ``node``'s ``n:`` field from the meta hash of each room, and it from the listeners."""
        field = f"n:{node}"
        pipe = self.link.client.pipeline(transaction=False)
        for room in rooms:
            pipe.hdel(self.keys.meta(room), field)
            pipe.srem(self.keys.listeners(room), node)
        pipe.execute()

    def _live_nodes(self) -> set[bytes]:
        return set(cast("list[bytes]", self._live(keys=[self.keys.nodes])))

    def who(self, room: str) -> list[str] | None:
        """The nicks in ``room`` on every live node, sorted; None if Redis is down."""
        if not self.link.is_up:
            return None
        try:
            live = self._live_nodes()
            entries = cast("dict[bytes, bytes]", self.link.client.hgetall(self.keys.who(room)))
        except FAILURES as exc:
            self.link.failed(exc)
            return None
        nicks = []
        for value in entries.values():
            node, _, nick = value.partition(b" ")
            if node in live or node == self.node.encode():
                nicks.append(nick.decode())
        return sorted(nicks, key=name_key)

    def rooms(self) -> dict[str, int] | None:
        """Each room with users on some live node -> how many; None if Redis is down."""
        if not self.link.is_up:
            return None
        try:
            live = self._live_nodes() | {self.node.encode()}
            index = cast("dict[bytes, bytes]", self.link.client.hgetall(self.keys.rooms))
            names = [n.decode() for n in index.values()]
            pipe = self.link.client.pipeline(transaction=False)
            for name in names:
                pipe.hvals(self.keys.who(name))
            values = cast("list[list[bytes]]", pipe.execute())
        except FAILURES as exc:
            self.link.failed(exc)
            return None
        counts = {}
        for name, members in zip(names, values, strict=True):
            count = sum(1 for v in members if v.partition(b" ")[0] in live)
            if count:
                counts[name] = count
        return counts

    def clear(self) -> None:
        """Remove this node, its users and its ``n:`` fields (shutdown); best effort, raises on failure."""
        for (folded, froom), (nick, _) in list(self.local.items()):
            self._unsent_leaves[(folded, froom)] = self._value(nick)
        self.local.clear()
        self.resync()
        self.link.client.zrem(self.keys.nodes, self.node)
        if self.published:
            by_key = {folded: room for room, folded in self.published.items()}
            self._forget_sequences(self.node, by_key.values())
