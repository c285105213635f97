"""Every Prometheus metric of the server, and the HTTP endpoint that serves them.

SHELL.  Each ``ChatServer`` owns one ``Metrics`` with its own
``CollectorRegistry``, so several servers in one process (tests) never share
counts.  The three counters on the hot path (lines received, deliveries,
bytes sent) are plain integers in ``Tally``, read when scraped: a
``prometheus_client.Counter`` takes a lock on every ``inc``, and bytes are
counted on every write.  The two gauges are also computed only when scraped.  Labels are reason names from a
fixed set, never a nick or an address.  Nothing in the pure core imports this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, ClassVar

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core.gate import HTTP, TOO_MANY_LINES, WRONG_PASSWORD
from ..core.limits import PASSWORD_FAILURES, PER_IP, SERVER_FULL

__all__ = ["REFUSAL_REASONS", "REJECTION_REASONS", "TIMEOUT_KINDS", "ClusterCollector", "Metrics", "Tally"]

#: Every label value of the labelled counters.  Each series exists at 0 from
#: the start, so ``rate()`` and alerts work before the first event.
REJECTION_REASONS = ("too_long",)
REFUSAL_REASONS = (
    SERVER_FULL,
    PER_IP,
    PASSWORD_FAILURES,
    "tls_handshake",
    HTTP,
    WRONG_PASSWORD,
    TOO_MANY_LINES,
)
TIMEOUT_KINDS = ("register", "idle")

log = logging.getLogger("gevent_chat")

#: Connections served at once, a greenlet each (a few KB): as many as the
#: descriptors left beside the clients' allow, within these bounds.  More
#: wait in the listen backlog.  Half-sent requests cannot keep a scraper
#: out for long: each connection has ``SCRAPE_TIMEOUT`` in all.
MIN_SCRAPERS = 64
MAX_SCRAPERS = 1024
#: Seconds a connection may take to send its request and read the answer.
SCRAPE_TIMEOUT = 5.0
#: Longest error message logged for one bad request.
MAX_LOGGED_CHARS = 200
#: The answer to a request that cannot be parsed (pywsgi's own).
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-length: 0\r\n\r\n"


class _ErrorLog:
    """Where pywsgi writes what went wrong: one line each, through our logger."""

    def write(self, message: str) -> None:
        line = " ".join(message.split())
        if line:
            log.info("metrics: %s", line[:MAX_LOGGED_CHARS])

    def writelines(self, lines: Iterable[str]) -> None:
        self.write("".join(lines))

    def flush(self) -> None:
        pass


class _ScrapeHandler(WSGIHandler):
    """pywsgi's handler with a read deadline, and errors logged in one line."""

    def handle(self) -> None:
        self.socket.settimeout(SCRAPE_TIMEOUT)  # a silent scraper must not hold a slot
        # ... nor one that trickles: the whole connection has the deadline.
        deadline = gevent.Timeout(SCRAPE_TIMEOUT)
        deadline.start()
        try:
            super().handle()
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            # pywsgi closed the socket in its own ``finally``
        finally:
            deadline.close()

    def _log_error(self, t: type[BaseException], v: BaseException, tb: TracebackType | None) -> None:
        log.warning("metrics: %s: %s", t.__name__, str(v)[:MAX_LOGGED_CHARS])

    def _handle_client_error(self, ex: Exception) -> tuple[str, bytes]:
        """A request pywsgi could not parse: one info line, and a 400.

        pywsgi's own prints a traceback to stderr for anything not a
        ``ValueError`` (``http.client`` raises ``HTTPException`` for too
        many or too long header lines), whatever the log level.
        """
        self._log_bad_request(str(ex) or type(ex).__name__)
        return "400", BAD_REQUEST

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":  # answered, but never logged
            self._log_bad_request("request line too long")
        return result

    def _log_bad_request(self, reason: str) -> None:
        text = "".join(c if c.isprintable() else "?" for c in " ".join(reason.split()))
        log.info("metrics: bad request from %s: %s", self.client_address[0], text[:MAX_LOGGED_CHARS])


class Tally:
    """Counts bumped on the hot path, with no lock: one process, one thread."""

    __slots__ = ("bytes_out", "deliveries", "lines_received")

    def __init__(self) -> None:
        self.lines_received = 0
        self.deliveries = 0
        self.bytes_out = 0


class _TallyCollector(Collector):
    """Exposes a ``Tally`` as three Prometheus counters."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def collect(self) -> Iterator[CounterMetricFamily]:
        t = self.tally
        yield CounterMetricFamily(
            "gevent_chat_received_lines", "Lines received from clients (any kind)", value=t.lines_received
        )
        yield CounterMetricFamily(
            "gevent_chat_delivered_lines",
            "Lines queued to recipients by broadcasts (recipients x lines)",
            value=t.deliveries,
        )
        yield CounterMetricFamily(
            "gevent_chat_sent_bytes", "Bytes written to client sockets", value=t.bytes_out
        )


class ClusterCollector(Collector):
    """Exposes a Redis bus's counters (``BusMetrics``) and whether Redis answers.

    ``counters`` returns the counter values by name; no labels, so one node's
    scrape is bounded whatever the cluster does.
    """

    HELP: ClassVar[dict[str, str]] = {
        "publishes": "Batches of lines stored in Redis and published to the other servers",
        "receives": "Batches from other servers delivered here (live or recovered)",
        "recoveries": "Times a gap was filled from a room's Stream",
        "recovered": "Batches among receives read back from a Stream after a gap or an outage",
        "epoch_changes": "Rooms whose data Redis lost (users were told lines may be missing)",
        "drops": "Invalid messages or entries read from Redis, dropped",
        "overflows": "Batches dropped from a full outage buffer",
        "publish_errors": "Batches Redis refused, dropped",
        "privates": "Private messages sent to a user on another server",
    }

    def __init__(self, counters: Callable[[], dict[str, int]], up: Callable[[], bool]) -> None:
        self.counters = counters
        self.up = up

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        values = self.counters()
        for name, text in self.HELP.items():
            yield CounterMetricFamily(f"gevent_chat_cluster_{name}", text, value=values.get(name, 0))
        yield GaugeMetricFamily("gevent_chat_redis_up", "1 while Redis answers, else 0", value=int(self.up()))


class Metrics:
    """The server's counters and gauges, registered in ``self.registry``."""

    def __init__(self, connected: Callable[[], int], registered: Callable[[], int]) -> None:
        r = self.registry = CollectorRegistry()
        self.connected = Gauge(
            "gevent_chat_connected_clients", "Open client connections, registered or not", registry=r
        )
        self.connected.set_function(connected)
        self.registered = Gauge("gevent_chat_registered_users", "Users with a nickname", registry=r)
        self.registered.set_function(registered)
        self.tally = Tally()
        r.register(_TallyCollector(self.tally))
        self.slow_consumers = Counter(
            "gevent_chat_slow_consumer_disconnects_total",
            "Clients cut because their outbox was full",
            registry=r,
        )
        self.rejected = Counter(
            "gevent_chat_rejected_lines_total",
            "Received lines that were refused",
            ["reason"],
            registry=r,
        )
        self.too_long = self.rejected.labels("too_long")
        self.throttles = Counter(
            "gevent_chat_flood_throttles_total",
            "Times a sender over its rate limit was paused",
            registry=r,
        )
        self.refused = Counter(
            "gevent_chat_refused_connections_total",
            "Connections refused or cut before registering, by reason",
            ["reason"],
            registry=r,
        )
        self.timeouts = Counter(
            "gevent_chat_timeout_disconnects_total",
            "Connections closed by a timeout, by kind (register, idle)",
            ["kind"],
            registry=r,
        )
        for counter, values in (
            (self.rejected, REJECTION_REASONS),
            (self.refused, REFUSAL_REASONS),
            (self.timeouts, TIMEOUT_KINDS),
        ):
            for value in values:
                counter.labels(value)
        #: Each transport sets its child's function (``labels("tcp").set_function``).
        self.connected_by_transport = Gauge(
            "gevent_chat_transport_connected_clients",
            "Open client connections by transport (tcp, web), registered or not",
            ["transport"],
            registry=r,
        )
        self.web_responses = Counter(
            "gevent_chat_web_responses_total",
            "HTTP answers of the web port, by status (101: a WebSocket opened)",
            ["status"],
            registry=r,
        )
        self._http: WSGIServer | None = None

    def watch_cluster(self, counters: Callable[[], dict[str, int]], up: Callable[[], bool]) -> None:
        """Export a Redis bus's counters and the Redis-up gauge (``ClusterCollector``)."""
        self.registry.register(ClusterCollector(counters, up))

    def serve(self, host: str, port: int, descriptors: int) -> tuple[str, int]:
        """Serve ``/metrics`` over HTTP in this process's hub; returns the bound address.

        ``descriptors`` is how many this port may use (see ``MIN_SCRAPERS``).
        """
        http = WSGIServer(
            (host, port),
            make_wsgi_app(self.registry),
            log=None,
            error_log=_ErrorLog(),
            handler_class=_ScrapeHandler,
            spawn=Pool(max(MIN_SCRAPERS, min(MAX_SCRAPERS, descriptors))),
        )
        http.start()
        self._http = http
        address = http.address
        assert isinstance(address, tuple)
        return str(address[0]), int(address[1])

    def close(self) -> None:
        if self._http is not None:
            self._http.stop(timeout=1)
            self._http = None
