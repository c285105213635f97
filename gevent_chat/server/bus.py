"""The bus: how room-wide deliveries reach the other server processes.

SHELL.  The hub publishes every room-wide event (a batch of chat, a
join, a quit...) once, encoded by ``core.codec``, after delivering it
locally, and the bus calls ``Inbound.receive`` for events that come from
elsewhere; each hub renders them for its own users, with its fan-out and
flow control and no local sender.  To the bus a payload is opaque bytes
in complete lines.  The
interface is as small as redis-py's ``PubSub``: attach, publish, close.

``LocalBus`` is the in-process implementation: the buses of one
``LocalBroker`` (servers in one process) act as one chat, each hub
delivering the others' lines to its own members.  A server on its own has
a broker of one, and publishing costs a loop over nobody.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Bus", "Inbound", "LocalBroker", "LocalBus"]


class Inbound(Protocol):
    """The hub's side of the seam."""

    def receive(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        """Render the encoded event ``payload`` (``lines`` complete lines) for this process's
        members of ``room``; ``remember`` keeps chat in the room's history."""


class Bus(Protocol):
    """What a hub needs of the processes it shares a chat with."""

    def attach(self, hub: Inbound) -> None:
        """Send deliveries from elsewhere to ``hub``."""

    def publish(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        """Hand a room-wide encoded event to the others; never blocks on them for long."""

    def has_peers(self) -> bool:
        """Whether anything published can reach another process: if not, the hub need not encode it."""

    def close(self) -> None:
        """Leave: nothing more is published or received."""


class LocalBroker:
    """Joins the ``LocalBus`` of every hub in one process."""

    def __init__(self) -> None:
        self.buses: list[LocalBus] = []

    def bus(self) -> LocalBus:
        """A new bus on this broker, for one hub."""
        return LocalBus(self)


class LocalBus:
    """One hub's end of a ``LocalBroker``."""

    def __init__(self, broker: LocalBroker | None = None) -> None:
        self.broker = LocalBroker() if broker is None else broker
        self.hub: Inbound | None = None

    def attach(self, hub: Inbound) -> None:
        self.hub = hub
        self.broker.buses.append(self)

    def publish(self, room: str, payload: bytes, lines: int, remember: bool) -> None:
        # Delivered at once, in the publisher's greenlet: the other hubs'
        # members are flow-controlled exactly as if they were local.
        buses = self.broker.buses
        if len(buses) > 1:
            for bus in buses:
                if bus is not self and bus.hub is not None:
                    bus.hub.receive(room, payload, lines, remember)

    def has_peers(self) -> bool:
        return len(self.broker.buses) > 1

    def close(self) -> None:
        if self in self.broker.buses:
            self.broker.buses.remove(self)
        self.hub = None
