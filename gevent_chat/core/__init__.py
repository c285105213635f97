"""The pure core of gevent-chat: the protocol, names, sessions, commands and limits.

Nothing in this package does I/O, imports ``gevent`` or ``socket``, or reads a
clock: bytes and values go in, values come out, and the shell (``server``,
``client``) moves them to and from the network.
"""
