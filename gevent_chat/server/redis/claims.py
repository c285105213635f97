"""Nicknames unique across every node of a cluster.

SHELL.  A nick is held by the node whose id is stored under its key, set
with ``SET key node NX EX ttl``: of two simultaneous claims exactly one
wins.  The holder refreshes its keys every ``ttl / 3`` seconds, so the nicks
of a node that died without a word expire within ``ttl``; a release deletes
the key only if this node still holds it (a compare-and-delete script).

While Redis is down a claim is granted on the local registry's word and
confirmed on the first refresh after Redis is back; if another node took the
nick meanwhile (its key had expired), ``on_lost(nick)`` is called, and the
caller must rename its user.  Refreshes report lost claims the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from ...core.protocol import name_key
from . import scripts
from .keys import Keys
from .link import ANY_ERROR, FAILURES, Link

__all__ = ["NickClaims"]

log = logging.getLogger("gevent_chat.redis")


class NickClaims:
    """The nicks this node holds, and the calls that keep them."""

    def __init__(
        self, link: Link, keys: Keys, node: str, ttl: int, on_lost: Callable[[str], None] | None = None
    ) -> None:
        self.link, self.keys, self.node, self.ttl = link, keys, node, ttl
        self.on_lost = on_lost
        self.held: dict[str, str] = {}  # folded -> as claimed
        self._refresh = link.script(scripts.CLAIM_REFRESH)
        self._release = link.script(scripts.RELEASE)

    def claim(self, nick: str) -> bool:
        """Take ``nick`` for this node; False if another node holds it.

        Waits for one round trip to Redis (at most the link's timeout); when
        Redis is known to be down, grants at once (see the module docstring).
        """
        folded = name_key(nick)
        if folded in self.held:
            self.held[folded] = nick
            return True
        if self.link.is_up:
            key = self.keys.nick(nick)
            try:
                if not self.link.client.set(key, self.node, nx=True, ex=self.ttl):
                    holder = cast("bytes | None", self.link.client.get(key))
                    if holder != self.node.encode():
                        return False
            except FAILURES as exc:
                self.link.failed(exc)
        self.held[folded] = nick
        return True

    def release(self, nick: str) -> None:
        """Give ``nick`` up (disconnect, rename); never waits when Redis is down.

        Without Redis the key simply expires within ``ttl``.
        """
        if self.held.pop(name_key(nick), None) is None or not self.link.is_up:
            return
        try:
            self._release(keys=[self.keys.nick(nick)], args=[self.node])
        except FAILURES as exc:
            self.link.failed(exc)

    def refresh(self) -> None:
        """Extend every held key, take back expired ones; report the lost ones.

        Raises what redis-py raises when Redis fails (the caller marks the link).
        """
        if not self.held:
            return
        held = list(self.held.items())
        pipe = self.link.client.pipeline(transaction=False)
        for _, nick in held:
            self._refresh(keys=[self.keys.nick(nick)], args=[self.node, self.ttl], client=pipe)
        results = pipe.execute()
        for (folded, nick), kept in zip(held, results, strict=True):
            if kept == 0 and self.held.get(folded) == nick:
                del self.held[folded]
                log.info("nick %s is now held by another server", nick)
                if self.on_lost is not None:
                    self.on_lost(nick)

    def release_all(self) -> None:
        """Give every held nick up (shutdown); best effort."""
        held, self.held = list(self.held.values()), {}
        if not held or not self.link.is_up:
            return
        try:
            pipe = self.link.client.pipeline(transaction=False)
            for nick in held:
                self._release(keys=[self.keys.nick(nick)], args=[self.node], client=pipe)
            pipe.execute()
        except ANY_ERROR as exc:
            log.info("could not release %d nick(s): %s", len(held), exc)
