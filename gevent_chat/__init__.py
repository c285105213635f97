"""gevent-chat: a line-based TCP chat server and client on gevent."""

__version__ = "0.1.0"
