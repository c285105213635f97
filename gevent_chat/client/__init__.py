"""The terminal client: ``python -m gevent_chat.client``, or ``gevent-chat``.

Empty on purpose: ``render`` and ``reconnect`` are pure and must import
without gevent; the shell is in ``app``.
"""
