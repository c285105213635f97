"""The client's TLS context, on ``gevent.ssl``.

SHELL.  Built from ``gevent.ssl.SSLContext`` directly, never from
``create_default_context()``, which returns the standard library's context
whose sockets would block the hub (see the server's ``tls`` module).
"""

from __future__ import annotations

import socket

from gevent import ssl
from gevent.socket import socket as gsocket

__all__ = ["client_context", "shutdown_fd"]


def client_context(cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """A client context: verify against ``cafile`` (or the system CAs), or not at all."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cafile is not None:
        ctx.load_verify_locations(cafile)
    else:
        ctx.load_default_certs()
    return ctx


def shutdown_fd(sock: socket.socket, how: int) -> None:
    """``shutdown(how)`` on the descriptor, keeping any TLS state; never raises.

    ``SSLSocket.shutdown()`` would drop the TLS state, after which ``send``
    writes plaintext; shutting the descriptor down underneath keeps it.
    """
    try:
        gsocket.shutdown(sock, how)
    except OSError:
        pass  # already closed or never connected
