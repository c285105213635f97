"""The browser client in Chromium, against a stand-in WebSocket server.

The stand-in (``StubServer``) is scaffolding until the chat server has its
WebSocket transport: a gevent ``StreamServer`` that serves the real page
through ``core.web`` and hands each WebSocket to the test, which plays the
chat server's side of the line protocol itself.  It proves the harness (the
browser on its own thread while gevent serves in-process), the page's
security headers and its handling of the protocol's lines.
"""

from __future__ import annotations

import random
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
import pytest
from gevent.event import Event
from gevent.pool import Pool
from gevent.queue import Empty, Queue
from gevent.server import StreamServer
from gevent.socket import socket

from gevent_chat.client.render import nick_colour
from gevent_chat.core.web import CSP, Response, Site, WebGate, WebSocketLines
from gevent_chat.server import static

if TYPE_CHECKING:  # imported at run time as the plugin below, not before it
    from tests.browser import BrowserPage

pytest_plugins = ["tests.browser"]

WAIT = 5.0
_CLOSE = object()


class StubConnection:
    """One accepted WebSocket: lines the page sent arrive in ``received``."""

    def __init__(self, sock: socket, lines: WebSocketLines) -> None:
        self.sock = sock
        self.lines = lines
        self.received: Queue[str] = Queue()
        self.closed = Event()
        self._outbox: Queue[object] = Queue()
        self._writer = gevent.spawn(self._write)

    def send(self, *texts: str) -> None:
        """Send lines (each gets its newline) or a prompt (pass ``end=""`` text as is)."""
        for text in texts:
            self._outbox.put(text.encode())

    def expect(self, timeout: float = WAIT) -> str:
        try:
            return self.received.get(timeout=timeout)
        except Empty:
            raise AssertionError("the page sent nothing") from None

    def close(self) -> None:
        """Start the close handshake (1001, as a server shutting down)."""
        self._outbox.put(_CLOSE)

    def _write(self) -> None:
        while True:
            item = self._outbox.get()
            try:
                if item is _CLOSE:
                    self.sock.sendall(self.lines.close(1001, "server shutting down"))
                    return
                assert isinstance(item, bytes)
                self.sock.sendall(self.lines.frames(item))
            except OSError:
                return

    def read(self) -> None:
        """The reader: frames in, lines to ``received``, until the WebSocket ends."""
        try:
            while not self.lines.is_closed:
                got = self.lines.receive_data(self.sock.recv(65536))
                for line in got.lines:
                    self.received.put("<too long>" if line is None else line.decode())
                if got.replies or self.lines.wants_write:
                    self._outbox.put(b"".join(got.replies))
                if got.closed:
                    self.sock.sendall(self.lines.close())
                    break
        except OSError:
            pass
        finally:
            self._writer.kill()
            self.sock.close()
            self.closed.set()


class StubServer:
    """The web port's HTTP side for real, the chat side left to the test."""

    def __init__(self) -> None:
        self.site = Site(static.assets(), max_line_bytes=64)
        self.connections: Queue[StubConnection] = Queue()
        self.live: list[StubConnection] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle, spawn=Pool(20))
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def _handle(self, sock: socket, addr: tuple[str, int]) -> None:
        gate = WebGate(self.site)
        result = None
        try:
            while result is None:
                result = gate.receive_data(sock.recv(65536))
            sock.sendall(result.data)
        except OSError:
            return
        if isinstance(result, Response):
            return
        conn = StubConnection(sock, result.lines)
        self.live.append(conn)
        self.connections.put(conn)
        conn.read()

    def accept(self, timeout: float = WAIT) -> StubConnection:
        try:
            return self.connections.get(timeout=timeout)
        except Empty:
            raise AssertionError("the page did not open a WebSocket") from None

    def stop(self) -> None:
        for conn in self.live:
            conn.sock.close()
        self.server.stop(timeout=1)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    try:
        yield server
    finally:
        server.stop()


def join(browser: BrowserPage, stub: StubServer, nick: str = "alice") -> StubConnection:
    """Open the page, log in as ``nick``, answer as a chat server would."""
    page = browser.page
    page.goto(stub.url)
    page.fill("#nick", nick)
    page.click("#join")
    conn = stub.accept()
    conn.send("Enter your nickname: ")
    assert conn.expect() == nick
    conn.send(f"*** Welcome, {nick}! 2 users online\n")
    browser.expect(page.locator("#status")).to_have_text("online")
    assert conn.expect() == "/who"
    return conn


def test_page_loads_with_csp_and_no_console_errors(browser_page: BrowserPage, stub: StubServer) -> None:
    response = browser_page.page.goto(stub.url)
    assert response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    browser_page.expect(browser_page.page.locator("#login")).to_be_visible()
    assert browser_page.page.evaluate("typeof window.geventChat.nickColour") == "function"
    assert browser_page.errors == []


def test_nick_is_sent_and_markup_is_shown_as_text(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    conn = join(browser_page, stub)
    attack = "<img src=x onerror=alert(1)>"
    conn.send(f"{attack}\n", f"mallory: {attack}\n", "*** 2 users in #lobby: alice, mallory\n")
    log = page.locator("#log")
    browser_page.expect(log.locator("li").nth(-2)).to_contain_text(f"mallory: {attack}")
    browser_page.expect(log.locator("li").nth(-3)).to_contain_text(attack)
    assert page.locator("#log img").count() == 0
    browser_page.expect(page.locator("#user-list li")).to_have_count(2)
    page.fill("#input", "hello there")
    page.press("#input", "Enter")
    assert conn.expect() == "hello there"
    browser_page.expect(log.locator("li.self").last).to_contain_text("alice: hello there")
    assert browser_page.dialogs == []
    assert browser_page.errors == []


def test_line_kinds_get_their_marks(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    conn = join(browser_page, stub)
    conn.send(
        "[14:02] bob: earlier\n",
        "*bob* psst\n",
        "-> *bob* hi\n",
        "* bob waves\n",
        "*** bob joined\n",
    )
    items = page.locator("#log li")
    browser_page.expect(items.last).to_have_class(re.compile(r"kind-notice"))
    history = items.filter(has_text="earlier")
    browser_page.expect(history.locator(".stamp.history")).to_have_text("14:02")
    browser_page.expect(history).to_have_class(re.compile("kind-chat"))
    browser_page.expect(items.filter(has_text="psst")).to_have_class(re.compile("kind-private"))
    browser_page.expect(items.filter(has_text="-> *bob* hi")).to_have_class(re.compile("kind-private_out"))
    browser_page.expect(items.filter(has_text="waves")).to_have_class(re.compile("kind-action"))
    colour = nick_colour("bob")
    browser_page.expect(history.locator(".nick")).to_have_class(re.compile(rf"\bc{colour}\b"))
    assert browser_page.errors == []


def test_nick_colours_match_the_terminal_client(browser_page: BrowserPage, stub: StubServer) -> None:
    browser_page.page.goto(stub.url)
    # Case folding is where JavaScript and Python differ; these are the hard cases.
    names = ["alice", "Bob", "BOB", "ß", "ẞtraße", "ΑΣ", "ΟΔΥΣΣΕΥΣ", "ﬁsh", "İstanbul", "Ꭰꭰ", "ǅ", "µ", "K"]
    letters = [chr(c) for c in range(0x30, 0x3000) if chr(c).isalnum()]
    rand = random.Random(7)
    names += ["".join(rand.choices(letters, k=rand.randint(1, 12))) for _ in range(2000)]
    got = browser_page.page.evaluate("names => names.map(n => window.geventChat.nickColour(n))", names)
    assert got == [nick_colour(n) for n in names]


def _has_case(ch: str) -> bool:
    """Assigned in Python's Unicode database, and changed by some case mapping."""
    if unicodedata.category(ch) in ("Cn", "Cs"):
        return False
    return ch.casefold() != ch or ch.lower() != ch or ch.upper() != ch


def test_casefold_matches_python_for_every_code_point(browser_page: BrowserPage, stub: StubServer) -> None:
    """Nick colours hash the case-folded nick, so JavaScript must fold exactly as Python does."""
    browser_page.page.goto(stub.url)
    chars = [chr(c) for c in range(0x110000) if _has_case(chr(c))]
    got = browser_page.page.evaluate("cs => cs.map(c => window.geventChat.casefold(c))", chars)
    assert [(c, f) for c, f in zip(chars, got, strict=True) if f != c.casefold()] == []
    words = ["ΑΣ", "ΟΔΥΣΣΕΥΣ", "straẞe", "I\u0131", "İi"]
    assert browser_page.page.evaluate("ws => ws.map(w => window.geventChat.casefold(w))", words) == [
        w.casefold() for w in words
    ]


def test_password_prompt_shows_the_password_field(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    page.goto(stub.url)
    page.fill("#nick", "alice")
    page.click("#join")
    conn = stub.accept()
    conn.send("Password: ")
    browser_page.expect(page.locator("#password")).to_be_visible()
    page.fill("#password", "s3cret")
    page.click("#join")
    assert conn.expect() == "s3cret"
    conn.send("Enter your nickname: ")
    assert conn.expect() == "alice"


def test_taken_nick_asks_again(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    page.goto(stub.url)
    page.fill("#nick", "alice")
    page.click("#join")
    conn = stub.accept()
    conn.send("Enter your nickname: ")
    assert conn.expect() == "alice"
    conn.send("*** nickname alice is taken, choose another\n", "Enter your nickname: ")
    browser_page.expect(page.locator("#login-error")).to_contain_text("taken")
    page.fill("#nick", "alice2")
    page.click("#join")
    assert conn.expect() == "alice2"


def test_history_recalls_sent_lines(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    conn = join(browser_page, stub)
    for line in ("first", "second"):
        page.fill("#input", line)
        page.press("#input", "Enter")
        assert conn.expect() == line
    page.press("#input", "ArrowUp")
    browser_page.expect(page.locator("#input")).to_have_value("second")
    page.press("#input", "ArrowUp")
    browser_page.expect(page.locator("#input")).to_have_value("first")
    page.press("#input", "ArrowDown")
    page.press("#input", "ArrowDown")
    browser_page.expect(page.locator("#input")).to_have_value("")


def test_reconnects_and_rejoins_the_room(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    conn = join(browser_page, stub)
    page.fill("#input", "/join dev")
    page.press("#input", "Enter")
    assert conn.expect() == "/join dev"
    conn.send("*** you joined #dev\n")
    assert conn.expect() == "/who"
    browser_page.expect(page.locator("#room")).to_have_text("#dev")
    conn.send("*** server shutting down\n")
    conn.close()
    assert conn.closed.wait(WAIT)
    started = time.monotonic()
    again = stub.accept()  # the first retry comes after 0.25-0.5 s
    assert time.monotonic() - started >= 0.2
    again.send("Enter your nickname: ")
    assert again.expect() == "alice"
    again.send("*** nickname alice is taken, choose another\n", "Enter your nickname: ")
    assert again.expect() == "alice_"
    again.send("*** Welcome, alice_! 1 user online\n")
    assert again.expect() == "/join dev"
    browser_page.expect(page.locator("#status")).to_have_text("online")


def test_binary_and_overlong_lines_get_error_lines(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    conn = join(browser_page, stub)
    page.evaluate("() => window.geventChat.state.ws.send(new Uint8Array([1, 2, 3]))")
    browser_page.expect(page.locator("#log li").last).to_contain_text("binary messages are not supported")
    page.fill("#input", "x" * 65)
    page.press("#input", "Enter")
    assert conn.expect() == "<too long>"


def test_screenshot_helper_writes_a_png(browser_page: BrowserPage, stub: StubServer, tmp_path: Path) -> None:
    conn = join(browser_page, stub)
    conn.send("bob: hello alice\n")
    browser_page.expect(browser_page.page.locator("#log li").last).to_contain_text("hello alice")
    path = browser_page.screenshot(tmp_path / "shot.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_quit_returns_to_the_login_without_reconnecting(browser_page: BrowserPage, stub: StubServer) -> None:
    page = browser_page.page
    conn = join(browser_page, stub)
    page.fill("#input", "/quit lunch")
    page.press("#input", "Enter")
    assert conn.expect() == "/quit lunch"
    conn.send("*** bye\n")
    conn.close()
    assert conn.closed.wait(WAIT)
    browser_page.expect(page.locator("#login-error")).to_have_text("You left the chat.")
    browser_page.expect(page.locator("#status")).to_have_text("left")
    with pytest.raises(AssertionError):
        stub.accept(timeout=1.5)  # three times the first retry's longest delay
