"""The client's TLS context, on ``gevent.ssl``.

SHELL.  Built from ``gevent.ssl.SSLContext`` directly, never from
``create_default_context()``, which returns the standard library's context
whose sockets would block the hub (see the server's ``tls`` module).
"""

from __future__ import annotations

import socket

from gevent import ssl
from gevent.socket import socket as gsocket

__all__ = ["client_context", "describe_error", "shutdown_fd"]


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


#: OpenSSL's reasons when the peer's first bytes are not a TLS record.
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
    }
)


def describe_error(err: OSError) -> str:
    """One line saying why connecting failed, with a hint where there is one."""
    if isinstance(err, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {err.verify_message} (see --cafile, --insecure)"
    if isinstance(err, ssl.SSLError) and err.reason in _NOT_TLS_REASONS:
        return "the server does not speak TLS: try without --tls"
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake failed: {err.reason or err.strerror or err}"
    return err.strerror or str(err) or type(err).__name__
