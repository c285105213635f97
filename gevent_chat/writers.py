"""Run connection writers on reused greenlets.

SHELL.  A writer exists only while its connection has output, so writers
start and end all the time.  Starting a fresh greenlet is not cheap: CPython
gives each new greenlet its own data stack, an ``mmap`` and ``munmap`` pair
that costs about ten times a greenlet switch.  ``WriterPool`` keeps a bounded
number of finished writer greenlets parked and hands them the next task.

A task runs start to end on one greenlet, and nothing else runs on that
greenlet meanwhile: while it drains a connection's outbox, that greenlet is
the connection's writer and nothing else.  Tasks must not be killed from
outside (a kill could land after the greenlet moved on to another task):
a writer is stopped by closing its socket, which fails its ``sendall``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from greenlet import greenlet

__all__ = ["WriterPool"]

log = logging.getLogger("gevent_chat")

#: A parked greenlet costs about 8 KB; this many are kept for reuse.
DEFAULT_MAX_IDLE = 256


class WriterPool:
    """Start tasks on parked greenlets when there are any, new ones otherwise."""

    def __init__(self, max_idle: int = DEFAULT_MAX_IDLE) -> None:
        self.max_idle = max_idle
        self._idle: list[greenlet] = []
        self._hub = gevent.get_hub()

    def start(self, task: Callable[..., object], *args: Any) -> None:
        """Run ``task(*args)`` soon, on a greenlet of its own; never blocks."""
        if self._idle:
            self._hub.loop.run_callback(self._idle.pop().switch, task, args)
        else:
            gevent.spawn_raw(self._work, task, args)

    def _work(self, task: Callable[..., object], args: tuple[Any, ...]) -> None:
        idle, hub, me = self._idle, self._hub, gevent.getcurrent()
        while True:
            task(*args)
            del task, args  # hold no connection while parked
            if len(idle) >= self.max_idle:
                return
            idle.append(me)
            task, args = hub.switch()
