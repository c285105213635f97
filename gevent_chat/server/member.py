"""One connected user as the server sees them, whatever the transport.

SHELL.  A ``Member`` is the outbox of a connection (what the registry holds
and the hub delivers to) plus what drives its session: flood pacing, the
registration deadline, the turns a reader gives recipients, and teardown.
A transport only turns bytes into lines: it calls ``run`` with its read
loop, and the read loop hands each chunk of lines to ``receive`` and
calls ``drain`` when it should give way.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from ..core import protocol
from ..core.address import format_address
from ..core.commands import COMMANDS
from ..core.effects import Authenticate, Close, Disconnect, Effect, Pause, Registered, Removed, Renamed
from ..core.events import Kicked, Renderer
from ..core.flood import TokenBucket
from ..core.gate import WRONG_PASSWORD, Gate
from ..core.irc.session import IrcSession
from ..core.lines import RENDERER as LINE_RENDERER
from ..core.rooms import Room
from ..core.session import Session
from .operators import authenticate
from .outbox import SLOW, Outbox

if TYPE_CHECKING:
    from .app import ChatServer

__all__ = ["Member"]

log = logging.getLogger("gevent_chat")

#: How long a closing connection may take to flush what is already queued to it.
CLOSE_FLUSH_SECONDS = 2.0


class Member(Outbox):
    """A connection's outbox and the shell around its ``Session``."""

    __slots__ = (
        "_reg_timer",
        "addr",
        "app",
        "bucket",
        "crowded",
        "goodbye",
        "heard",
        "last_bytes",
        "log_reason",
        "renderer",
        "scheme",
        "session",
        "turn_lines",
    )

    def __init__(
        self,
        app: ChatServer,
        sock: socket.socket,
        addr: tuple[str, int],
        scheme: str,
        frame: Callable[[bytes], bytes] | None = None,
        last_bytes: Callable[[], bytes] | None = None,
        renderer: Renderer = LINE_RENDERER,
        session: Callable[[Member], IrcSession[Member]] | None = None,
        goodbye: Callable[[str], bytes] = protocol.notice,
    ) -> None:
        """``scheme`` names the transport in the log (``tcp``, ``tls``,
        ``ws``, ``wss``); ``frame`` and ``last_bytes`` are the transport's:
        how lines become bytes on the wire, and what to send (best effort)
        just before the socket closes, such as a WebSocket close frame.
        ``renderer`` turns events into this member's bytes, shared by every
        member of its kind.
        ``session`` makes the session of another protocol than the line
        one (IRC's); ``goodbye`` is how that protocol says why it closes."""
        config = app.config
        peer = format_address(addr[0], addr[1])
        super().__init__(sock, peer, config.outbox_size, app.writers, app.metrics.tally, frame)
        self.last_bytes = last_bytes
        self.renderer = renderer
        self.app = app
        self.addr = addr
        self.scheme = scheme
        self.goodbye = goodbye
        self.session: Session[Member] | IrcSession[Member]
        if session is None:
            gate = Gate(config.password, config.max_unregistered_lines, config.password_delay)
            self.session = Session(
                self, app.registry, gate, config.max_line_bytes, address=addr[0], clock=time.time
            )
        else:
            self.session = session(self)
        #: Recipients this reader's last turn left past half full (see ``Hub.drain``).
        self.crowded: list[Outbox] = []
        #: Lines acted on per turn: half an outbox, so one chunk cannot fill a reading client.
        self.turn_lines = max(1, config.outbox_size >> 1)
        #: Flood control, made at the first paced line: an idle user holds none.
        #: (A bucket starts full and an untouched one stays full, so making it
        #: late changes nothing.)
        self.bucket: TokenBucket | None = None
        self.heard = time.monotonic()  # when data last arrived: the idle sweep reads it
        self._reg_timer: Any = None  # the loop timer of the registration window
        #: What the log says of why this connection ended, if not ``cut_reason``:
        #: a ``/quit`` reason is something the user said, and is never logged.
        self.log_reason: str | None = None

    @property
    def nick(self) -> str | None:
        return self.session.nick

    @property
    def address(self) -> str:
        """The peer's address, which address bans match."""
        return self.addr[0]

    @property
    def room(self) -> Room[Member] | None:
        return self.session.room

    # -- the read loop -------------------------------------------------------------

    def run(self, read_loop: Callable[[], bool | None], deadline: float) -> bool:
        """Serve this connection with the transport's ``read_loop`` until it ends or parks.

        ``deadline`` (monotonic) ends the registration window, which opened
        when the connection was accepted.  True means the read loop parked
        (see ``proceed``): the connection lives on with no greenlet.
        """
        log.info("connect from %s over %s", self.peer, self.scheme)
        # A loop timer, not a ``gevent.Timeout``: a parked reader has no greenlet to raise into.
        timer = self._reg_timer = gevent.get_hub().loop.timer(max(0.001, deadline - time.monotonic()))
        timer.start(self._registration_expired)
        return self.proceed(read_loop, opening=True)

    def proceed(self, read_loop: Callable[[], bool | None], opening: bool = False) -> bool:
        """Run ``read_loop`` (after the prompt, if ``opening``); tear down when it ends.

        A read loop that returns True has parked: nothing is torn down, and
        it has arranged to be continued, by another ``proceed`` on whatever
        greenlet resumes it.  So teardown runs exactly once, in the greenlet
        that sees the end (EOF, close, cut, timeout or error).
        """
        parked = False
        try:
            if opening:
                self.app.hub.apply(self, self.session.opening())
            parked = bool(read_loop())
        except OSError as exc:
            if not self.closing:
                log.debug("%s: %s", self.peer, exc)
        except Exception:
            log.exception("error on connection from %s", self.peer)
            self.cut_reason = "server error"
        finally:
            if not parked:
                self._teardown()
        return parked

    def _registration_expired(self) -> None:
        """In the hub: the registration window closed with no nick taken."""
        self._close_reg_timer()
        if self.closing:
            return
        self.app.metrics.timeouts.labels("register").inc()
        self.finish(self.goodbye("registration timed out, goodbye"), "registration timeout")

    def _close_reg_timer(self) -> None:
        if self._reg_timer is not None:
            self._reg_timer.close()
            self._reg_timer = None  # about 300 bytes a connection, kept for nothing

    def receive(self, lines: list[bytes | None]) -> None:
        """Count a chunk's lines and act on them in turns, pacing a flooder.

        Over its rate, the reader sleeps until tokens refill instead of
        reading on: the lines already received wait in order, the sender's
        TCP window fills, and nothing is dropped.  The sender is told once,
        when this starts (``TokenBucket.hold_back``).  Other clients are served
        by their own greenlets meanwhile.
        """
        if not lines:
            return  # part of a line: not activity (a trickler must not dodge the idle timeout)
        self.heard = now = time.monotonic()
        if log.isEnabledFor(logging.DEBUG):
            self._log_commands(lines)
        metrics = self.app.metrics
        metrics.tally.lines_received += len(lines)
        if None in lines:
            metrics.too_long.inc(lines.count(None))
        bucket = self.bucket
        rate = self.app.config.rate_limit
        i, n = 0, len(lines)
        while i < n and not self.closing:
            if not rate:
                granted = n - i
            elif self.session.nick is None:  # registration lines are not paced; the gate caps them
                granted = 1
            else:
                if bucket is None:
                    bucket = self.bucket = TokenBucket(rate, self.app.config.rate_burst, now)
                granted = bucket.take(n - i, now)
                if not granted:
                    metrics.throttles.inc()
                    if bucket.hold_back():  # once a flood, not once a pause
                        self.deliver(protocol.slow_down(n - i, rate))
                    log.debug("%s (%s) paced: %d lines waiting", self.nick, self.peer, n - i)
                    gevent.sleep(bucket.delay(now))
                    now = time.monotonic()
                    continue
            self._act(lines[i : i + granted] if i or granted < n else lines)
            i += granted
            now = time.monotonic()

    def _log_commands(self, lines: list[bytes | None]) -> None:
        """Log the names of the commands in ``lines`` (never their arguments)."""
        if self.session.nick is None or isinstance(self.session, IrcSession):
            return
        for line in lines:
            if line is not None and line[:1] == b"/" and line[:2] != b"//":
                name = line[1:].split(b" ", 1)[0].decode("utf-8", "replace").casefold()
                log.debug("%s (%s) ran /%s", self.nick, self.peer, name if name in COMMANDS else "(unknown)")

    def _act(self, lines: list[bytes | None]) -> None:
        """Run the session on ``lines`` in turns of at most ``turn_lines``."""
        hub, session, step = self.app.hub, self.session, self.turn_lines
        if len(lines) <= step:
            hub.apply(self, session.receive(lines))
            return
        for start in range(0, len(lines), step):
            if start:
                hub.drain(self.crowded)
            if self.closing:
                break
            hub.apply(self, session.receive(lines[start : start + step]))

    def drain(self) -> None:
        """Give way: let the writers woken so far run, and the crowded drain."""
        self.app.hub.drain(self.crowded)

    def act(self, effect: Effect) -> None:
        """Carry out an effect that concerns this connection only."""
        if isinstance(effect, Registered):
            self._close_reg_timer()
            log.info("%s registered as %s", self.peer, effect.nick)
        elif isinstance(effect, Renamed):
            log.info("%s (%s) is now known as %s", effect.old, self.peer, effect.nick)
        elif isinstance(effect, Pause):
            gevent.sleep(effect.seconds)
        elif isinstance(effect, Authenticate):
            self._authenticate(effect)
        elif isinstance(effect, Removed):
            effect.member.kicked(effect.event)
        elif isinstance(effect, Disconnect):
            log.info("%s (%s) disconnected %s: %s", self.nick, self.peer, effect.member.nick, effect.reason)
            effect.member.disconnect(effect.text, effect.reason)
        elif isinstance(effect, Close):
            if effect.refusal is not None:
                self.app.metrics.refused.labels(effect.refusal).inc()
            if effect.refusal == WRONG_PASSWORD:
                self.app.password_failures.record(self.addr[0], time.monotonic())
            self.cut_reason = effect.reason
            if effect.refusal is None:  # /quit: its reason is the user's own words
                self.log_reason = "quit"
            self.closing = True  # the reader stops; the writer sends what is queued

    def _authenticate(self, effect: Authenticate) -> None:
        """``/oper``: check the password in a worker thread, within the address's failure budget.

        The password shares the server password's budget (``--max-password-failures``).
        """
        app, ip = self.app, self.addr[0]
        if app.password_failures.exhausted(ip, time.monotonic()):
            log.warning("%s (%s) refused /oper: too many failures from this address", self.nick, self.peer)
            app.hub.apply(self, self.session.opered(None, exhausted=True))
            return
        name = authenticate(app.opers, effect.name, effect.password)
        if name is None:
            app.password_failures.record(ip, time.monotonic())
            log.warning("%s (%s) failed /oper", self.nick, self.peer)
        else:
            log.info("%s (%s) is a server operator as %s", self.nick, self.peer, name)
        if not self.closing:
            app.hub.apply(self, self.session.opered(name))

    def kicked(self, event: Kicked) -> None:
        """Another user kicked this one: the session answers (a line user moves to the lobby)."""
        if not self.closing:
            self.app.hub.apply(self, self.session.removed(event))

    def disconnect(self, text: str, reason: str) -> None:
        """An operator ends this connection: ``text`` to this user, ``reason`` to their rooms."""
        self.finish(self.goodbye(text), reason)

    # -- teardown ------------------------------------------------------------------

    def _teardown(self) -> None:
        """Leave the registry, tell the room, flush or stop the writer, close."""
        self._close_reg_timer()
        self.closing = True
        app = self.app
        reason = self.cut_reason
        logged = self.log_reason or reason
        nick = self.session.nick
        farewell = self.session.leave(reason)
        if farewell and not app.stopping:
            # Through the hub: many leaving at once must not cut the rest.
            app.hub.apply(self, farewell)
        if nick is not None:
            log.info("%s (%s) disconnected%s", nick, self.peer, f": {logged}" if logged else "")
        else:
            log.info("%s disconnected before registering%s", self.peer, f": {logged}" if logged else "")
        if self._cut and reason == SLOW:  # not a /quit giving the same reason
            log.warning("%s (%s) cut: outbox full (%d lines)", nick, self.peer, self.pending)
            app.metrics.slow_consumers.inc()
            if self.outbox is None:  # no writer mid-line: the notice cannot split a line
                notice = self.goodbye("disconnected: too slow")
                self.send_last_words(notice if self.frame is None else self.frame(notice))
        elif self._cut:
            pass  # the outbox was dropped: only a writer stuck in send is left
        elif not self.wait_flushed(CLOSE_FLUSH_SECONDS):
            log.debug("%s: output not flushed in time", self.peer)
        # After a cut too (server shutdown cuts once flushed), if no writer is mid-write.
        if self.last_bytes is not None and (not self._cut or self.outbox is None):
            self.send_last_words(self.last_bytes())
        self.sock.close()  # a writer still in send fails and ends
        self.crowded.clear()  # the leave notice may have noted recipients
        app.forget(self)
