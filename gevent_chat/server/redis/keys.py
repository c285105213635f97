"""Every Redis key and channel name of one cluster, in one place.

PURE.  Names start with ``gc:`` and carry the cluster name, so several chat
clusters (``--cluster``) can share one Redis.  All the keys of one room share
the hash tag ``{cluster:room}``: the publish script touches the room's meta
hash and Stream in one call, which Redis Cluster allows only within one slot.
Names go in as their ``name_key`` (``core/names.py``), so ``#Dev``, ``#dev`` and
their look-alikes meet.
"""

from __future__ import annotations

from ...core.protocol import is_valid_nick, name_key

__all__ = ["Keys"]


class Keys:
    """Key and channel names for ``cluster`` (a name following the nick rules)."""

    def __init__(self, cluster: str) -> None:
        if not is_valid_nick(cluster):
            raise ValueError(f"invalid cluster name {cluster!r}: use letters, digits, _ - .")
        self.cluster = cluster
        tag = f"{{{cluster}}}"
        #: ZSET node id -> the Redis time (ms) after which it counts as dead.
        self.nodes = f"gc:{tag}:nodes"
        #: HASH ``last``: the Redis time (ms) of the last heartbeat of any node;
        #: ``calm``: no node is reaped before this time (set after a stall).
        self.beats = f"gc:{tag}:beats"
        #: SET of nodes found dead whose entries are still being removed: a reaper
        #: cut off halfway leaves its node here, and the next beat of any node finishes.
        self.reaping = f"gc:{tag}:reaping"
        #: HASH folded room name -> the room's name as first spelled; rooms with presence.
        self.rooms = f"gc:{tag}:rooms"
        #: HASH mask -> the server ban (``core.records``): ``/gban`` on every node.
        self.server_bans = f"gc:{tag}:gbans"

    def room(self, room: str, what: str) -> str:
        """Key ``what`` of ``room``, in the room's hash slot (with its meta hash, Stream and
        channel), so one script may touch them all: the place for more of a room's state
        (topic, modes, bans) as it moves into Redis.  ``meta``, ``log``, ``live:*``,
        ``nodes``, ``who`` and ``rules`` are taken."""
        return f"gc:{{{self.cluster}:{name_key(room)}}}:{what}"

    def meta(self, room: str) -> str:
        """HASH: ``e`` epoch, ``s`` last offset, ``n:<node>`` that node's last sequence number,
        ``x:<name>`` what was decided once for the whole cluster (``RedisBus.decide_once``).

        An ``n:`` field lasts as long as its node: removed when the node stops,
        or by the node that finds it dead.
        """
        return self.room(room, "meta")

    def stream(self, room: str) -> str:
        """STREAM of the room's entries, ID ``<offset>-0``: recovery and history."""
        return self.room(room, "log")

    def channel(self, room: str, node: str) -> str:
        """PUB/SUB channel on which ``node`` hears the room's entries from the other nodes.

        One per listening node, so a node's own entries are not sent back to it.
        """
        return self.room(room, f"live:{node}")

    def listeners(self, room: str) -> str:
        """SET of the nodes that listen to the room: the publish script sends to each but its own."""
        return self.room(room, "nodes")

    def who(self, room: str) -> str:
        """HASH folded nick -> ``<node> <nick>``: the room's users on every node."""
        return self.room(room, "who")

    def rules(self, room: str) -> str:
        """HASH: the room's rules, one field per thing that changes alone (``core.records``)."""
        return self.room(room, "rules")

    def nick(self, nick: str) -> str:
        """STRING: the node holding ``nick``.  No hash tag: nicks spread over all slots."""
        return f"gc:{self.cluster}:nick:{name_key(nick)}"

    def node_channel(self, node: str) -> str:
        """A channel of one node's own, which its subscriber always listens on."""
        return f"gc:{{{self.cluster}}}:node:{node}"
