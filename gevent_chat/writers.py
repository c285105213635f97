"""Run connection writers on a few reused greenlets.

SHELL.  A writer exists only while its connection has output, so writer tasks
start and end all the time, and a message to a big room starts one for almost
every member at once.  Starting a fresh greenlet is not cheap: CPython gives
each new greenlet its own data stack, an ``mmap`` and ``munmap`` pair that
costs about ten times a greenlet switch, and a parked one holds about 8 KB.

So ``WriterPool`` queues tasks and runs them on *runner* greenlets, one task
after another.  A task that completes without waiting costs a function call;
only a task that has to wait for its socket keeps its runner, and then another
runner (a parked one, or a new one) takes over the queue.  ``_draining``
counts the runners that will get to the queue without waiting on a socket:
scheduled, or between two tasks.  ``start`` is never called while a runner is
running (one greenlet runs at a time, and a task never starts writers), so a
runner that is inside a task when ``start`` is called is waiting on its
socket; when ``_draining`` is 0, ``start`` wakes or makes a runner.  Tasks
already queued when the last draining runner starts waiting inside a task
would be stranded until the next ``start``; so a runner that takes a task
while others wait also schedules ``_check``, which runs as soon as the hub
gets control back (when that runner has finished draining, or is waiting)
and wakes or makes a runner if tasks wait and none is draining.

Outboxes are reused as well: making a ``Queue`` costs more than the rest of a
delivery, and a finished writer's outbox is empty and open.

A task runs start to end on one greenlet: while it drains a connection's
outbox, that greenlet is the connection's writer and nothing else.  Tasks
must not be killed from outside (a kill could land after the runner moved on
to another task): a writer is stopped by closing its socket, which fails its
``send``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.queue import Queue
from greenlet import greenlet

__all__ = ["WriterPool"]

log = logging.getLogger("gevent_chat")

#: A parked greenlet costs about 8 KB; this many idle runners are kept for reuse.
DEFAULT_MAX_IDLE = 256

Task = tuple[Callable[..., object], tuple[Any, ...]]


class WriterPool:
    """Run writer tasks in order on runner greenlets; never blocks the caller."""

    def __init__(self, outbox_size: int, max_idle: int = DEFAULT_MAX_IDLE) -> None:
        self.outbox_size = outbox_size
        self.max_idle = max_idle
        self._idle: list[greenlet] = []
        self._spare: list[Queue[bytes]] = []
        self._tasks: deque[Task] = deque()
        self._draining = 0
        self._check_pending = False
        self._hub = gevent.get_hub()

    def outbox(self) -> Queue[bytes]:
        """An empty outbox of ``outbox_size`` entries, reused if one is spare."""
        return self._spare.pop() if self._spare else Queue(self.outbox_size)

    def recycle(self, outbox: Queue[bytes]) -> None:
        """Keep a finished writer's outbox for the next one, if it is reusable."""
        if len(self._spare) < self.max_idle and not outbox.is_shutdown and not outbox.qsize():
            self._spare.append(outbox)

    def start(self, task: Callable[..., object], *args: Any) -> None:
        """Run ``task(*args)`` soon, after the tasks already queued; never blocks."""
        self._tasks.append((task, args))
        if not self._draining:
            self._add_runner()

    def _add_runner(self) -> None:
        self._draining += 1
        if self._idle:
            self._hub.loop.run_callback(self._idle.pop().switch)
        else:
            gevent.spawn_raw(self._run)

    def _check(self) -> None:
        """Runs in the hub: make sure queued tasks have a runner that will reach them."""
        self._check_pending = False
        if self._tasks and not self._draining:
            self._add_runner()

    def _run(self) -> None:
        tasks, idle, hub, me = self._tasks, self._idle, self._hub, gevent.getcurrent()
        while True:
            while tasks:
                task, args = tasks.popleft()
                if tasks and not self._check_pending:
                    self._check_pending = True
                    hub.loop.run_callback(self._check)
                self._draining -= 1  # inside a task, this runner may wait on a socket
                try:
                    task(*args)
                except Exception:
                    log.exception("writer task failed")
                self._draining += 1
                del task, args  # hold no connection while parked
            self._draining -= 1
            if len(idle) >= self.max_idle:
                return
            idle.append(me)
            hub.switch()
            # Woken by start(), which counted this runner as draining again.
