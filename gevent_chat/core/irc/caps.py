"""IRCv3 capability negotiation (CAP LS/REQ/END/LIST), one client's state.

PURE.  ``Caps.command`` answers one ``CAP`` message; while a client is
negotiating, registration waits for ``CAP END`` (IRCv3 capability
negotiation, version 302).  Requests are all-or-nothing: one unknown
name in a ``REQ`` NAKs the whole request.
"""

from __future__ import annotations

from .message import line
from .numerics import ERR_INVALIDCAPCMD

__all__ = ["SUPPORTED", "Caps"]

#: What this server offers, each with its CAP LS 302 value ("" for none).
#: Not offered: sasl.
SUPPORTED: dict[str, str] = {
    "away-notify": "",
    "batch": "",
    "cap-notify": "",
    "echo-message": "",
    "labeled-response": "",
    "message-tags": "",
    "multi-prefix": "",
    "server-time": "",
    "setname": "",
    "userhost-in-names": "",
}

#: Capabilities a 302 client has without asking (the spec says so of cap-notify).
_IMPLIED_BY_302 = frozenset({"cap-notify"})


class Caps:
    """The capabilities one client negotiated."""

    __slots__ = ("enabled", "negotiating", "version")

    def __init__(self) -> None:
        self.enabled: frozenset[str] = frozenset()
        #: True from the first ``CAP LS``/``REQ`` before registration until ``CAP END``.
        self.negotiating = False
        self.version = 0

    def __contains__(self, name: object) -> bool:
        return name in self.enabled

    def command(self, server: str, nick: str | None, params: list[str], registered: bool) -> list[bytes]:
        """The replies to ``CAP params`` from ``nick`` (None before NICK)."""
        target = nick or "*"
        sub = params[0].upper() if params else ""
        if sub == "LS":
            return self._ls(server, target, params[1:], registered)
        if sub == "LIST":
            return [line("CAP", target, "LIST", " ".join(sorted(self.enabled)), source=server)]
        if sub == "REQ":
            if not registered:
                self.negotiating = True
            return self._req(server, target, params[1] if len(params) > 1 else "")
        if sub == "END":
            self.negotiating = False
            return []
        return [line(ERR_INVALIDCAPCMD, target, sub or "*", "Invalid CAP command", source=server)]

    def _ls(self, server: str, target: str, args: list[str], registered: bool) -> list[bytes]:
        if not registered:
            self.negotiating = True
        version = int(args[0]) if args and args[0].isdigit() else 0
        if version > self.version:
            self.version = version
        if self.version >= 302:
            self.enabled |= _IMPLIED_BY_302
            listed = " ".join(f"{k}={v}" if v else k for k, v in sorted(SUPPORTED.items()))
        else:
            listed = " ".join(sorted(SUPPORTED))
        return [line("CAP", target, "LS", listed, source=server)]

    def _req(self, server: str, target: str, asked: str) -> list[bytes]:
        names = asked.split()
        wanted: set[str] = set()
        dropped: set[str] = set()
        for name in names:
            bare = name[1:] if name.startswith("-") else name
            if bare not in SUPPORTED:
                return [line("CAP", target, "NAK", asked, source=server)]
            (dropped if name.startswith("-") else wanted).add(bare)
        self.enabled = (self.enabled | wanted) - dropped
        return [line("CAP", target, "ACK", asked, source=server)]
