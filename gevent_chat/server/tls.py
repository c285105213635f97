"""TLS contexts and the server-side handshake, on ``gevent.ssl``.

SHELL.  Contexts are built from ``gevent.ssl.SSLContext`` directly, never from
``gevent.ssl.create_default_context()``: that one returns the standard
library's context, whose sockets block the whole hub during a handshake or a
read.  ``handshake`` wraps an accepted socket and finishes the handshake under
a deadline in the connection's own greenlet, so a client that never speaks
TLS (or speaks plaintext) holds only its own greenlet, and only until then.

Closing notes: ``SSLSocket.shutdown()`` drops the TLS state of the socket
(gevent sets ``_sslobj = None``), after which ``send`` would write plaintext
and ``recv`` raises; ``shutdown_fd`` shuts the descriptor down underneath
instead, so a reader blocked in ``recv`` sees EOF and the writer keeps TLS.
"""

from __future__ import annotations

import socket

import gevent
from gevent import ssl
from gevent.socket import socket as gsocket

__all__ = ["handshake", "server_context", "shutdown_fd"]


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server context (TLS 1.2 or later) for ``certfile``; raises ``OSError``/``SSLError``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def handshake(ctx: ssl.SSLContext, sock: socket.socket, timeout: float) -> ssl.SSLSocket:
    """Wrap an accepted socket and finish the handshake within ``timeout`` seconds.

    Raises ``OSError`` (``SSLError`` included) or ``gevent.Timeout``; the
    caller closes ``sock`` either way.
    """
    tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        with gevent.Timeout(timeout):
            tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def shutdown_fd(sock: socket.socket, how: int) -> None:
    """``shutdown(how)`` on the descriptor, keeping any TLS state; never raises."""
    try:
        gsocket.shutdown(sock, how)
    except OSError:
        pass  # already closed or never connected: nothing left to wake
