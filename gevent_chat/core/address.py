"""How the server writes a network address in its log and its errors (PURE)."""

from __future__ import annotations

__all__ = ["format_address"]


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:8000``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
