"""Several server processes, one chat: the Redis engine (``--redis-url``).

``RedisBus`` (in ``bus``) is the only class the server needs: it plugs into
the hub's ``Bus`` seam and carries nick claims, presence and history too.
"""

from .bus import BusMetrics, Inbound, RedisBus
from .link import RedisUnavailable

__all__ = ["BusMetrics", "Inbound", "RedisBus", "RedisUnavailable"]
