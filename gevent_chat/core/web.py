"""The web port: one HTTP request head, then perhaps a WebSocket carrying lines.

PURE: no ``gevent``, no ``socket``, no clock.  h11 and wsproto are sans-I/O,
so, as in h11, bytes go in, results come out, and the caller does all I/O.
Two steps:

1. ``WebGate`` reads one request head (at most ``Site.max_head_bytes``) and
   answers it: ``GET /`` and the page's assets get a ``Response`` with strict
   security headers; ``GET /ws`` becomes an ``Upgrade`` (a 101 response and a
   ``WebSocketLines``); anything else is a plain-text 4xx.  Every ``Response``
   ends its connection (``Connection: close``): the page is four small files,
   so keep-alive would buy little and add an idle state to police.
2. ``WebSocketLines`` turns frames into the same lines ``LineBuffer`` gives the
   TCP transport, and lines back into one text frame each, without their
   ``\\n`` (the IRCv3 WebSocket convention).

Only a page of the same origin (the ``Origin`` header names the host and port
of the ``Host`` header, with ``https`` exactly when the port serves TLS) or of
an origin on the site's allow-list may open ``/ws``.  A handshake without
``Origin`` is allowed: browsers always send one (RFC 6455, 4.1), so only a
non-browser client can leave it out, and such a client could reach the TCP
port anyway.

wsproto has no message size limit, so the line limit is enforced here while a
message arrives: wsproto hands over each frame's payload as it is received,
and at most ``limit + 1`` bytes of a line are ever kept (``LineBuffer``).
"""

from __future__ import annotations

import dataclasses
import http
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    TextMessage,
)
from wsproto.events import Request as WsRequest
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .address import format_address
from .protocol import LineBuffer, notice

__all__ = [
    "CSP",
    "GOING_AWAY",
    "MAX_HEAD_BYTES",
    "NORMAL_CLOSURE",
    "SUBPROTOCOL",
    "Asset",
    "Received",
    "Response",
    "Site",
    "Upgrade",
    "WebGate",
    "WebSocketLines",
    "error_response",
    "is_same_origin",
    "normalise_origin",
]

#: The longest request head (request line and headers) read before a 431.
#: nginx's ``large_client_header_buffers`` is 4 x 8k; a browser's WebSocket
#: handshake is under 1 KiB.
MAX_HEAD_BYTES = 8192

#: The IRCv3 name of "one UTF-8 IRC message per text message"; chosen when
#: offered, and then ``/ws`` speaks IRC; without it, the line protocol.
SUBPROTOCOL = "text.ircv3.net"

#: Nothing but our own files: no inline script or style, no other origin, no
#: framing.  ``connect-src 'self'`` covers ws:/wss: to this host (CSP 3).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

NORMAL_CLOSURE = int(CloseReason.NORMAL_CLOSURE)  # 1000: /quit
GOING_AWAY = int(CloseReason.GOING_AWAY)  # 1001: the server shuts down

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Headers on every response: no sniffing, no referrer, no framing.
_SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

BINARY_REFUSED = notice("error: binary messages are not supported, send text")


# -- origins ------------------------------------------------------------------------


def normalise_origin(url: str) -> str:
    """``scheme://host:port`` for an origin such as ``https://chat.example``.

    The scheme and host are lowercased and the default port is made explicit,
    so two spellings of one origin compare equal.  Raises ``ValueError`` for
    anything but an http(s) URL with a host and no path, query or user.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"an origin has no path, query or user: {url!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]  # .port raises ValueError when malformed
    # .hostname is already lowercased, with IPv6 brackets removed
    return f"{scheme}://{format_address(parts.hostname, port)}"


def is_same_origin(origin: str, host: str, tls: bool) -> bool:
    """True if ``origin`` is the page this ``Host`` (header value) serves."""
    if any(c in host for c in "/@?#\\ "):
        return False
    try:
        return normalise_origin(origin) == normalise_origin(f"{'https' if tls else 'http'}://{host}")
    except ValueError:
        return False


# -- HTTP ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file the web port serves."""

    content_type: str
    body: bytes


@dataclasses.dataclass(frozen=True)
class Site:
    """What the web port serves, and to whom it opens ``/ws``."""

    #: Path -> file, e.g. ``{"/": index.html, "/app.js": ...}``.
    assets: Mapping[str, Asset]
    #: Origins allowed besides the page's own, as ``normalise_origin`` gives them.
    origins: frozenset[str] = frozenset()
    #: ``--max-line-bytes``: the longest line a WebSocket message may carry.
    max_line_bytes: int = 4096
    max_head_bytes: int = MAX_HEAD_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "origins", frozenset(normalise_origin(o) for o in self.origins))


@dataclasses.dataclass(frozen=True)
class Response:
    """A whole HTTP response: send ``data``, then close the connection.

    ``data`` is empty when there is no one left to answer (the peer closed
    before finishing its request).  ``status`` is for logs and metrics.
    """

    data: bytes
    status: int


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """The request opened a WebSocket: send ``data`` (the 101), then frames.

    ``received`` holds what the bytes that came after the request head
    already said (nearly always nothing: a client waits for the 101).
    """

    data: bytes
    lines: WebSocketLines
    subprotocol: str | None
    received: Received


def _response(
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
    cache: str = "no-store",
) -> Response:
    reason = http.HTTPStatus(status).phrase
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", cache),
        *_SECURITY_HEADERS,
        *extra,
        ("Connection", "close"),
    ]
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return Response(head.encode("latin-1") + (b"" if head_only else body), status)


def _error(status: int, text: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return _response(status, f"{status} {http.HTTPStatus(status).phrase}: {text}\n".encode(), extra=extra)


def error_response(status: int, text: str) -> Response:
    """A plain-text 4xx/5xx that ends the connection, as ``WebGate`` gives them."""
    return _error(status, text)


class WebGate:
    """The request head of one connection to the web port.

    ``receive_data(data)`` returns None while the head is incomplete, then one
    ``Response`` or ``Upgrade``; after that the gate is done and the caller
    moves on (to ``Upgrade.lines``) or closes.  ``receive_data(b"")`` means
    the peer closed.  The head may not exceed ``site.max_head_bytes``: a
    longer one gets a 431 without being buffered further.
    """

    __slots__ = ("_fed", "_http", "done", "site", "tls")

    def __init__(self, site: Site, *, tls: bool = False) -> None:
        self.site = site
        self.tls = tls
        self.done = False
        self._fed = 0  # bytes received so far
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=site.max_head_bytes)

    def receive_data(self, data: bytes) -> Response | Upgrade | None:
        if self.done:
            raise RuntimeError("this request was already answered")
        if not data:
            return self._finish(Response(b"", 0))
        self._fed += len(data)
        self._http.receive_data(data)
        try:
            event = self._http.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in (400, 431) else 400
            return self._finish(_error(status, "request head too large" if status == 431 else "bad request"))
        if event is h11.NEED_DATA:
            return None
        assert isinstance(event, h11.Request), event
        # h11 checks its limit only while a head is incomplete; one that
        # arrived whole in a single read is measured here.
        if self._fed - len(self._http.trailing_data[0]) > self.site.max_head_bytes:
            return self._finish(_error(431, "request head too large"))
        return self._finish(self._route(event))

    def _finish(self, result: Response | Upgrade) -> Response | Upgrade:
        self.done = True
        return result

    def _route(self, request: h11.Request) -> Response | Upgrade:
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        method = request.method
        if path == "/ws":
            if method != b"GET":
                return _error(405, "method not allowed", (("Allow", "GET"),))
            return self._upgrade(request)
        asset = self.site.assets.get(path)
        if asset is None:
            return _error(404, "not found")
        if method not in (b"GET", b"HEAD"):
            return _error(405, "method not allowed", (("Allow", "GET, HEAD"),))
        return _response(200, asset.body, asset.content_type, head_only=method == b"HEAD", cache="no-cache")

    def _upgrade(self, request: h11.Request) -> Response | Upgrade:
        headers = list(request.headers)
        found = {name: value for name, value in headers}
        host = found.get(b"host")
        if request.http_version != b"1.1" or host is None:
            return _error(400, "a WebSocket handshake needs HTTP/1.1 and a Host header")
        origin = found.get(b"origin")
        if origin is not None and not self._is_allowed(origin.decode("latin-1"), host.decode("latin-1")):
            return _error(403, "this origin may not open the chat")
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(headers, request.target)
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            status, extra = 400, cast("tuple[tuple[str, str], ...]", ())
            if isinstance(hint, RejectConnection):
                status = hint.status_code
                extra = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in hint.headers)
            return _error(status, f"not a WebSocket handshake ({exc})", extra)
        offer = next(e for e in ws.events() if isinstance(e, WsRequest))
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offer.subprotocols else None
        data = ws.send(AcceptConnection(subprotocol=subprotocol))  # no extensions: no deflate bombs
        lines = WebSocketLines(ws, self.site.max_line_bytes)
        trailing, _ = self._http.trailing_data
        return Upgrade(data, lines, subprotocol, lines.receive_data(trailing) if trailing else Received())

    def _is_allowed(self, origin: str, host: str) -> bool:
        if is_same_origin(origin, host, self.tls):
            return True
        try:
            return normalise_origin(origin) in self.site.origins
        except ValueError:
            return False


# -- WebSocket ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Received:
    """What one ``WebSocketLines.receive_data`` call found, in arrival order.

    ``lines`` follows ``LineBuffer.feed``: each complete line (no line ending),
    ``None`` once for a line over the limit.  ``replies`` are ``*** `` lines
    for this client (a refused binary message), to queue like any reply.
    ``closed``: the peer closed, broke the protocol or went away; read no more,
    and end with ``WebSocketLines.close()``.  ``pong``: a pong arrived.
    """

    lines: list[bytes | None] = dataclasses.field(default_factory=list)
    replies: list[bytes] = dataclasses.field(default_factory=list)
    closed: bool = False
    pong: bool = False


#: The payload ``WebSocketLines.frames`` framed last, and its frames.  A
#: broadcast hands the same bytes object to every recipient, and a server's
#: text frames are the same bytes on every connection (unmasked, and no
#: extension is ever accepted), so a line to a room is framed once, not once
#: per WebSocket in it.  Holding the payload keeps its identity unique.
_last_framed: list[bytes] = [b"", b""]
_last_crlf = [False]  # whether ``_last_framed`` dropped each line's CR


class WebSocketLines:
    """Lines over one accepted WebSocket (wsproto's server side).

    Receiving: ``receive_data(data)`` -> ``Received`` (``b""`` means the TCP
    stream ended).  A text message is split like a TCP stream (a trailing
    ``\\n`` or ``\\r\\n`` is dropped, an inner one starts a new line), so a
    message is normally one line; the line limit applies while its frames
    arrive.  A binary message is refused with one reply and skipped.

    Sending: ``frames(payload)`` turns ``\\n``-ended lines (and a newline-less
    prompt at the end) into one text frame each, after any control frames
    waiting (pongs to the peer's pings, our ``ping()``s); ``wants_write`` says
    some wait.  Once closing, lines are dropped.  ``close(code)`` gives the
    close frame, to write last: it echoes the peer's close, or reports the
    protocol error, or sends ``code``.
    """

    __slots__ = ("_buffer", "_control", "_failed", "_skipping", "close_code", "crlf", "limit", "ws")

    def __init__(self, ws: WSConnection, limit: int) -> None:
        self.ws = ws
        self.limit = limit
        #: Lines to send end in CR LF (IRC): each frame leaves the CR out too.
        self.crlf = False
        self._buffer: LineBuffer | None = None  # the text message under way
        self._skipping = False  # inside a binary message, already refused
        self._control: list[bytes] = []
        self._failed = False  # the peer broke the protocol: answer with close_code
        #: The peer's close code (1006 if the stream just ended), or our error's.
        self.close_code: int | None = None

    @property
    def is_open(self) -> bool:
        """Lines may still be exchanged."""
        return self.ws.state is ConnectionState.OPEN and not self._failed

    @property
    def is_closed(self) -> bool:
        """Both sides have closed (or the stream ended): close the socket."""
        return self.ws.state is ConnectionState.CLOSED

    @property
    def wants_write(self) -> bool:
        """Control frames wait for ``frames()``."""
        return bool(self._control)

    def receive_data(self, data: bytes) -> Received:
        if self.ws.state is ConnectionState.CLOSED:
            return Received(closed=True)
        was_open = self.is_open
        self.ws.receive_data(data if data else None)
        got = Received()
        closed = pong = False
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._text(event, got.lines)
            elif isinstance(event, BytesMessage):
                if not self._skipping:
                    got.replies.append(BINARY_REFUSED)
                self._skipping = not event.message_finished
            elif isinstance(event, Ping):
                if self.ws.state is ConnectionState.OPEN:
                    self._control.append(self.ws.send(event.response()))
            elif isinstance(event, Pong):
                pong = True
            elif isinstance(event, CloseConnection):
                closed = True
                self.close_code = event.code
                # wsproto reports a protocol error as a close but stays open.
                self._failed = self.ws.state is ConnectionState.OPEN
                break
        if not was_open and got.lines:
            got.lines.clear()  # said after our close: nobody is listening
        return dataclasses.replace(got, closed=closed, pong=pong) if closed or pong else got

    def _text(self, event: TextMessage, out: list[bytes | None]) -> None:
        if self._buffer is None:
            self._buffer = LineBuffer(self.limit)
        out.extend(self._buffer.feed(event.data.encode()))
        if event.message_finished:
            last = self._buffer.close()
            if last is not None:
                out.append(last)
            self._buffer = None

    def frames(self, payload: bytes = b"") -> bytes:
        out, self._control = self._control, []
        if payload and self.is_open:
            if _last_framed[0] is not payload or _last_crlf[0] is not self.crlf:
                send = self.ws.send
                lines = payload.split(b"\n")
                if not lines[-1]:
                    lines.pop()
                if self.crlf:
                    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
                _last_crlf[0] = self.crlf
                framed = b"".join([send(TextMessage(data=line.decode("utf-8", "replace"))) for line in lines])
                _last_framed[:] = [payload, framed]
            out.append(_last_framed[1])
        return b"".join(out)

    def ping(self, payload: bytes = b"") -> None:
        """Queue a keepalive ping for the next ``frames()``; the answer shows as ``pong``."""
        if self.is_open:
            self._control.append(self.ws.send(Ping(payload=payload)))

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> bytes:
        """The close frame to write after everything else; b"" if none is due."""
        pending = self.frames()
        if self._failed and self.close_code is not None:
            code, reason = self.close_code, ""
        elif self.ws.state is ConnectionState.REMOTE_CLOSING and self.close_code is not None:
            code = self.close_code  # echo the peer's code (RFC 6455, 5.5.1)
            if code in (CloseReason.NO_STATUS_RCVD, CloseReason.ABNORMAL_CLOSURE):
                code = NORMAL_CLOSURE
        try:
            return pending + self.ws.send(CloseConnection(code=code, reason=reason))
        except LocalProtocolError:  # already closed, or closing
            return pending
