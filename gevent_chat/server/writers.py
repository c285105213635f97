"""Run connection writers (and woken readers) on reused greenlets, and direct sends.

SHELL.  A writer exists only while its connection has output, so writers
start and end all the time.  Starting a fresh greenlet is not cheap: CPython
gives each new greenlet its own data stack, an ``mmap`` and ``munmap`` pair
that costs about ten times a greenlet switch.  ``WriterPool`` keeps a bounded
number of finished writer greenlets parked and hands them the next task.
A plain-TCP reader woken from its park (see ``tcp.LineReader``) runs on one
of them too.

Outboxes are reused the same way: making a ``Queue`` costs more than the
rest of a delivery, and a finished writer's outbox is empty and open.

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
from gevent.queue import Queue
from greenlet import greenlet

from .outbox import Outbox, send_due

__all__ = ["WriterPool"]

log = logging.getLogger("gevent_chat")

#: A parked greenlet costs about 8 KB; this many are kept for reuse.
DEFAULT_MAX_IDLE = 256


class WriterPool:
    """Start tasks on parked greenlets when there are any, new ones otherwise."""

    def __init__(self, outbox_size: int, max_idle: int = DEFAULT_MAX_IDLE) -> None:
        self.outbox_size = outbox_size
        self.max_idle = max_idle
        self._idle: list[greenlet] = []
        self._spare: list[Queue[bytes]] = []
        self._hub = gevent.get_hub()
        #: Outboxes with output for the end of this loop turn (see ``arm``).
        self.due: list[Outbox] = []

    def arm(self) -> None:
        """Have everything on ``due`` sent once this loop turn's greenlets have run.

        Like Redis's ``beforeSleep``: every reader woken in one turn queues
        first, then each client gets everything in one ``send``, from the
        hub itself, with no greenlet to switch to.  An outbox arms the pool
        when it puts itself on an empty ``due``.
        """
        self._hub.loop.run_callback(self._send_due)

    def _send_due(self) -> None:
        due, self.due = self.due, []
        send_due(due)

    def outbox(self) -> Queue[bytes]:
        """An empty outbox of ``outbox_size`` entries, reused if one is spare."""
        return self._spare.pop() if self._spare else Queue(self.outbox_size)

    def recycle(self, outbox: Queue[bytes]) -> None:
        """Keep a finished writer's outbox for the next one, if it is reusable."""
        if len(self._spare) < self.max_idle and not outbox.is_shutdown and not outbox.qsize():
            self._spare.append(outbox)

    def start(self, task: Callable[..., object], *args: Any) -> None:
        """Run ``task(*args)`` soon, on a greenlet of its own; never blocks."""
        if self._idle:
            self._hub.loop.run_callback(self._idle.pop().switch, task, args)
        else:
            gevent.spawn_raw(self._work, task, args)

    def run_now(self, task: Callable[..., object], *args: Any) -> None:
        """Like ``start``, but from the hub only: switch to the greenlet at once.

        A watcher's callback does this to wake a parked reader with no
        extra loop callback, as gevent's own waits do.
        """
        if self._idle:
            self._idle.pop().switch(task, args)
        else:
            greenlet(self._work, self._hub).switch(task, args)

    def _work(self, task: Callable[..., object], args: tuple[Any, ...]) -> None:
        idle, hub, me = self._idle, self._hub, gevent.getcurrent()
        while True:
            task(*args)
            del task, args  # hold no connection while parked
            if len(idle) >= self.max_idle:
                return
            idle.append(me)
            task, args = hub.switch()
