"""How the server writes a network address in its log and its errors (PURE)."""

from __future__ import annotations

__all__ = ["WILDCARD_HOSTS", "browsable_url", "format_address"]

#: Hosts that bind every address (of their family; ``::`` takes IPv4 too on Linux).
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:8000``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def browsable_url(scheme: str, host: str, port: int, path: str = "/") -> str:
    """A URL for a port bound on ``host`` that a browser on this machine can open.

    A wildcard bind is not an address to browse to (``http://0.0.0.0:8080/``):
    it becomes the loopback address of its family.
    """
    if host in WILDCARD_HOSTS:
        host = "::1" if host == "::" else "127.0.0.1"
    return f"{scheme}://{format_address(host, port)}{path}"
