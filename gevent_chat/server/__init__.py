"""The chat server: the gevent shell around the pure core.

``python -m gevent_chat.server`` runs ``main``; ``ChatServer`` is the
embeddable service (``start()`` returns at once, ``stop()`` is graceful).
"""

from .app import ChatServer, main

__all__ = ["ChatServer", "main"]
