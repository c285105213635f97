"""Redis Cluster: which master holds a key, and a client that sends each command there.

SHELL.  ``Link`` asks the Redis named by ``--redis-url`` whether it is a
Cluster node (``INFO cluster``); if so, ``Router`` stands in for the redis-py
client the rest of the bus uses.  It reads the slot map (``CLUSTER SLOTS``)
from any node that answers, keeps one plain redis-py client per master (on
the link's gevent connection classes, with the URL's TLS and AUTH
settings), and sends each command to the master of its key's slot; a
pipeline is split per master and its replies put back in order.  A
``MOVED`` reply (a slot changed hands) refreshes the map and the command is
sent once more; anything else a cluster in flux answers (``CLUSTERDOWN``,
``TRYAGAIN``, ``READONLY`` from a demoted master, a dead master's socket) is
a failure: the link goes down, and its supervisor's ``ping`` refreshes the
map and pings every master until all answer, as after any outage.

redis-py's own ``RedisCluster`` is not used: its retries ``time.sleep``,
which would stop every greenlet of the process during a failover.

Every key of a room carries the room's hash tag (``keys``), so a room's
script runs on one master, and its channel (a shard channel: SPUBLISH and
SSUBSCRIBE, Redis >= 7) lives on that master too.  The cluster-wide keys
(nodes, beats, rooms index) share the tag ``{cluster}``: one slot.  Nick
keys have no tag and spread over every slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis
from redis.crc import key_slot
from redis.exceptions import AskError, NoScriptError

__all__ = ["SLOTS", "Address", "RoutedScript", "Router", "key_slot"]

#: Hash slots of a Redis Cluster.
SLOTS = 16384

Address = tuple[str, int]


def _key_of(name: str, args: Sequence[Any]) -> Any:
    """The key a command of redis-py's is routed by."""
    if name == "evalsha":  # sha, numkeys, keys..., args...
        return args[2] if int(args[1]) > 0 else b""
    return args[0]


class Router:
    """A client for a Redis Cluster with the calls the bus makes of redis-py's ``Redis``."""

    cluster = True

    def __init__(self, seed: redis.Redis, make: Callable[[Address], redis.Redis]) -> None:
        self.seed = seed
        self.make = make
        self.clients: dict[Address, redis.Redis] = {}
        self.owner: list[Address] = []  # slot -> its master; empty until ``refresh``
        self.scripts: list[RoutedScript] = []
        kwargs = seed.connection_pool.connection_kwargs
        self.seed_address: Address = (str(kwargs.get("host", "127.0.0.1")), int(kwargs.get("port", 6379)))

    # -- the slot map ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the slot map from the first node that answers; raises ``redis.ConnectionError``."""
        last: Exception | None = None
        for client in [self.seed, *self.clients.values()]:
            try:
                run: Callable[..., Any] = client.execute_command
                slots = cast("list[Any]", run("CLUSTER SLOTS"))
                break
            except (redis.ConnectionError, redis.TimeoutError, OSError, redis.ResponseError) as exc:
                last = exc
        else:
            raise redis.ConnectionError(f"no node of the Redis Cluster answers: {last}")
        owner: list[Address | None] = [None] * SLOTS
        for entry in slots:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            address = (host or self.seed_address[0], int(master[1]))
            owner[start : end + 1] = [address] * (end - start + 1)
        if any(a is None for a in owner):
            raise redis.ConnectionError("the Redis Cluster does not cover every slot")
        self.owner = cast("list[Address]", owner)

    def address(self, key: str | bytes) -> Address:
        """The master that holds ``key``'s slot."""
        if not self.owner:
            self.refresh()
        return self.owner[key_slot(key.encode() if isinstance(key, str) else key)]

    def masters(self) -> list[Address]:
        if not self.owner:
            self.refresh()
        return sorted(set(self.owner))

    def node(self, address: Address) -> redis.Redis:
        """The client for the master at ``address``."""
        client = self.clients.get(address)
        if client is None:
            client = self.clients[address] = self.make(address)
        return client

    def connection(self, address: Address | None) -> Any:
        """A new, unconnected redis-py connection to the master at ``address`` (None: any master)."""
        client = self.node(self.masters()[0] if address is None else address)
        pool = client.connection_pool  # not make_connection(): see ``link.fresh_connection``
        return pool.connection_class(**pool.connection_kwargs)

    # -- commands -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            key = _key_of(name, args)
            for attempt in range(2):
                client = self.node(self.address(key))
                try:
                    return getattr(client, name)(*args, **kwargs)
                except AskError:  # MOVED or ASK: the slot moved
                    if attempt:
                        raise
                    self.refresh()
            raise AssertionError("unreachable")

        return call

    def ping(self) -> bool:
        """Refresh the slot map and ping every master; raises when one does not answer,
        or while the cluster says it is down (masters answer PING then, not commands)."""
        self.refresh()
        for address in self.masters():
            client = self.node(address)
            run: Callable[..., Any] = client.execute_command
            info = run("CLUSTER INFO")
            state = info.get("cluster_state") if isinstance(info, dict) else None
            if state is None:
                text = info.decode() if isinstance(info, bytes) else str(info)
                state = "ok" if "cluster_state:ok" in text else "fail"
            if state != "ok":
                raise redis.exceptions.ClusterDownError(f"cluster_state:{state} on {address[0]}:{address[1]}")
        return True

    def script_load(self, script: str) -> str:
        """Load ``script`` on every master (each has its own script cache)."""
        sha = ""
        for address in self.masters():
            sha = self.node(address).script_load(script)
        return sha

    def register_script(self, script: str) -> RoutedScript:
        routed = RoutedScript(self, script)
        self.scripts.append(routed)
        return routed

    def pipeline(self, transaction: bool = False) -> RoutedPipeline:
        if transaction:
            raise ValueError("no transactions across the masters of a Redis Cluster")
        return RoutedPipeline(self)

    def close(self) -> None:
        for client in [self.seed, *self.clients.values()]:
            client.connection_pool.disconnect()


class RoutedScript:
    """redis-py's ``Script`` for a ``Router``: EVALSHA on the key's master, loaded where missing."""

    def __init__(self, router: Router, script: str) -> None:
        self.router = router
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()  # Redis names a script by its SHA1

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        target = self.router if client is None else client
        try:
            return target.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.router.script_load(self.script)
            return target.evalsha(self.sha, len(keys), *keys, *args)


class RoutedPipeline:
    """Commands queued, then sent as one pipeline per master; replies in the order queued."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., RoutedPipeline]:
        if name.startswith("_"):
            raise AttributeError(name)

        def queue(*args: Any, **kwargs: Any) -> RoutedPipeline:
            self.calls.append((name, args, kwargs))
            return self

        return queue

    def execute(self) -> list[Any]:
        router, calls = self.router, self.calls
        groups: dict[Address, list[int]] = {}
        for i, (name, args, _) in enumerate(calls):
            groups.setdefault(router.address(_key_of(name, args)), []).append(i)
        results: list[Any] = [None] * len(calls)
        for address, indexes in groups.items():
            for attempt in range(2):
                pipe = router.node(address).pipeline(transaction=False)
                for i in indexes:
                    name, args, kwargs = calls[i]
                    getattr(pipe, name)(*args, **kwargs)
                try:
                    replies = pipe.execute()
                    break
                except NoScriptError:  # a master that never saw the scripts (new, or restarted)
                    if attempt:
                        raise
                    for script in router.scripts:
                        router.node(address).script_load(script.script)
            for i, reply in zip(indexes, replies, strict=True):
                results[i] = reply
        self.calls = []
        return results
