"""The browser client in Chromium, against the real chat server.

Each test starts a ``ChatServer`` in this process with its web port on, and
drives pages in headless Chromium (``tests.browser``: Playwright runs on its
own thread, so the server keeps serving while a test waits on the browser).
Other users are raw TCP clients, as ``nc`` would be: browser and terminal
users meet in the same rooms.

``test_conversation_between_browsers_and_a_terminal`` also makes the README's
screenshot: with ``GEVENT_CHAT_SCREENSHOT=1`` it writes ``docs/screenshot.png``,
otherwise a copy in the test's temporary directory.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import pytest

from gevent_chat.client.render import nick_colour
from gevent_chat.core.config import Config
from gevent_chat.core.web import CSP
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient

if TYPE_CHECKING:  # imported at run time as the plugin below, not before it
    from tests.browser import BrowserPage

pytest_plugins = ["tests.browser"]

Pages = Callable[[], "BrowserPage"]


class Servers:
    """Chat servers with a web port, all stopped after the test."""

    def __init__(self) -> None:
        self.running: list[ChatServer] = []
        self.clients: list[ChatClient] = []

    def start(self, web_port: int = 0, **overrides: Any) -> ChatServer:
        overrides.setdefault("rate_limit", 0)
        server = ChatServer(Config(host="127.0.0.1", port=0, web_port=web_port, **overrides))
        server.start()
        self.running.append(server)
        return server

    def stop(self, server: ChatServer) -> None:
        self.running.remove(server)
        server.stop(timeout=1)

    def terminal(self, server: ChatServer, nick: str) -> ChatClient:
        """A raw TCP user, registered."""
        client = ChatClient(server.address)
        self.clients.append(client)
        client.register(nick)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.running:
            server.stop(timeout=1)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def chat(servers: Servers) -> ChatServer:
    return servers.start()


def url(server: ChatServer) -> str:
    return "http://{}:{}/".format(*server.web_address)


def login(browser: BrowserPage, server: ChatServer, nick: str) -> Any:
    """Open the page, join as ``nick``, wait until online with the user list shown."""
    page = browser.page
    page.goto(url(server))
    page.fill("#nick", nick)
    page.click("#join")
    browser.expect(page.locator("#status")).to_have_text("online")
    browser.expect(page.locator("#me")).to_have_text(nick)
    browser.expect(page.locator("#user-list")).to_contain_text(nick)
    return page


def say(page: Any, line: str) -> None:
    page.fill("#input", line)
    page.press("#input", "Enter")


def watch_close(page: Any) -> None:
    """Record how the page's current WebSocket closes (code, clean) in ``window.wsClosed``."""
    script = "e => { window.wsClosed = [e.code, e.wasClean]; }"
    page.evaluate(f"() => window.geventChat.state.ws.addEventListener('close', {script})")


def sees(browser: BrowserPage, text: str) -> None:
    """The page's log shows ``text`` (as text) within the call timeout."""
    browser.expect(browser.page.locator("#log li", has_text=text).last).to_be_visible()


# -- the page itself ----------------------------------------------------------------------


def test_page_loads_with_csp_and_no_console_errors(browser_page: BrowserPage, chat: ChatServer) -> None:
    response = browser_page.page.goto(url(chat))
    assert response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    browser_page.expect(browser_page.page.locator("#login")).to_be_visible()
    assert browser_page.page.evaluate("typeof window.geventChat.nickColour") == "function"
    assert browser_page.errors == []


def test_nick_colours_match_the_terminal_client(browser_page: BrowserPage, chat: ChatServer) -> None:
    browser_page.page.goto(url(chat))
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


def test_casefold_matches_python_for_every_code_point(browser_page: BrowserPage, chat: ChatServer) -> None:
    """Nick colours hash the case-folded nick, so JavaScript must fold exactly as Python does."""
    browser_page.page.goto(url(chat))
    chars = [chr(c) for c in range(0x110000) if _has_case(chr(c))]
    got = browser_page.page.evaluate("cs => cs.map(c => window.geventChat.casefold(c))", chars)
    assert [(c, f) for c, f in zip(chars, got, strict=True) if f != c.casefold()] == []
    words = ["ΑΣ", "ΟΔΥΣΣΕΥΣ", "straẞe", "I\u0131", "İi"]
    assert browser_page.page.evaluate("ws => ws.map(w => window.geventChat.casefold(w))", words) == [
        w.casefold() for w in words
    ]


# -- browsers and terminals in one chat ---------------------------------------------------


def test_conversation_between_browsers_and_a_terminal(
    browser_page: BrowserPage, browser_pages: Pages, servers: Servers, chat: ChatServer, tmp_path: Path
) -> None:
    grace = servers.terminal(chat, "grace")
    grace.send("morning! the build is green again")
    alice = browser_page
    alice_page = login(alice, chat, "alice")
    sees(alice, "the build is green again")  # history, with the time it was said
    alice.expect(alice_page.locator("#log li.kind-chat .stamp.history")).to_have_count(1)
    bob = browser_pages()
    bob_page = login(bob, chat, "bob")
    grace.expect(r"^\*\*\* bob joined #lobby$")
    say(alice_page, "hi both, I am in a browser")
    assert grace.read_line() == "alice: hi both, I am in a browser"
    sees(bob, "alice: hi both, I am in a browser")
    say(bob_page, "/me waves from another tab")
    assert grace.read_line() == "* bob waves from another tab"
    sees(alice, "bob waves from another tab")
    grace.send("nice, and I am on nc")
    sees(alice, "grace: nice, and I am on nc")
    sees(bob, "grace: nice, and I am on nc")
    grace.send("/msg alice the page looks good")
    sees(alice, "the page looks good")
    alice.expect(alice_page.locator("#log li.kind-private")).to_have_count(1)
    say(alice_page, "thanks! try /join dev to move rooms")
    assert grace.expect(r"^alice: ").string == "alice: thanks! try /join dev to move rooms"
    sees(bob, "try /join dev to move rooms")
    alice.expect(alice_page.locator("#user-list li")).to_have_count(3)
    assert bob_page.locator("#log li", has_text="the page looks good").count() == 0  # private
    # The README's picture: this conversation, as alice's page shows it.
    if os.environ.get("GEVENT_CHAT_SCREENSHOT") == "1":
        shot = alice.screenshot()  # docs/screenshot.png
    else:
        shot = alice.screenshot(tmp_path / "screenshot.png")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert alice.errors == bob.errors == []


def test_join_moves_a_browser_user(
    browser_page: BrowserPage, browser_pages: Pages, servers: Servers, chat: ChatServer
) -> None:
    carol = servers.terminal(chat, "carol")
    carol.send("/join dev")
    carol.expect(r"^\*\*\* you joined #dev$")
    bob = browser_pages()
    login(bob, chat, "bob")
    page = login(browser_page, chat, "alice")
    sees(bob, "*** alice joined #lobby")
    say(page, "/join dev")
    browser_page.expect(page.locator("#room")).to_have_text("#dev")
    carol.expect(r"^\*\*\* alice joined #dev$")
    sees(bob, "alice left #lobby")
    users = page.locator("#user-list li")
    browser_page.expect(users).to_have_count(2)
    browser_page.expect(users.nth(0)).to_contain_text("alice")
    browser_page.expect(users.nth(1)).to_contain_text("carol")
    say(page, "hello dev")
    assert carol.read_line() == "alice: hello dev"
    carol.send("welcome to dev")
    sees(browser_page, "carol: welcome to dev")
    assert bob.page.locator("#log li", has_text="dev").count() == 0  # bob stayed in #lobby


def test_html_and_script_are_shown_as_text(
    browser_page: BrowserPage, browser_pages: Pages, servers: Servers, chat: ChatServer
) -> None:
    mallory = servers.terminal(chat, "mallory")
    page = login(browser_page, chat, "alice")
    img = "<img src=x onerror=alert(1)>"
    script = "<script>alert(2)</script>"
    mallory.send(img)
    mallory.send(script)
    mallory.send('<a href="javascript:alert(3)">click</a> <b>bold</b>')
    sees(browser_page, f"mallory: {img}")
    sees(browser_page, f"mallory: {script}")
    sees(browser_page, "<b>bold</b>")
    bob = browser_pages()
    bob_page = login(bob, chat, "bob")
    say(page, f"{img} {script}")  # from one browser to another
    sees(bob, f"alice: {img} {script}")
    for one in (page, bob_page):
        assert one.locator("#log img, #log script, #log a, #log b").count() == 0
        assert one.locator("img, a, b").count() == 0
    assert browser_page.dialogs == bob.dialogs == []
    assert browser_page.errors == bob.errors == []


def test_line_kinds_get_their_marks(browser_page: BrowserPage, servers: Servers, chat: ChatServer) -> None:
    bob = servers.terminal(chat, "bob")
    bob.send("earlier")
    page = login(browser_page, chat, "alice")
    bob.expect(r"^\*\*\* alice joined #lobby$")
    bob.send("/msg alice psst")
    say(page, "/msg bob hi")
    bob.send("/me waves")
    items = page.locator("#log li")
    history = items.filter(has_text="earlier")
    browser_page.expect(history.locator(".stamp.history")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    browser_page.expect(history).to_have_class(re.compile("kind-chat"))
    browser_page.expect(items.filter(has_text="psst")).to_have_class(re.compile("kind-private"))
    browser_page.expect(items.filter(has_text="-> *bob* hi")).to_have_class(re.compile("kind-private_out"))
    browser_page.expect(items.filter(has_text="waves")).to_have_class(re.compile("kind-action"))
    browser_page.expect(items.filter(has_text="Welcome")).to_have_class(re.compile("kind-notice"))
    colour = nick_colour("bob")
    browser_page.expect(history.locator(".nick")).to_have_class(re.compile(rf"\bc{colour}\b"))
    assert browser_page.errors == []


def test_password_prompt_shows_the_password_field(browser_page: BrowserPage, servers: Servers) -> None:
    server = servers.start(password="s3cret", password_delay=0)
    page = browser_page.page
    page.goto(url(server))
    page.fill("#nick", "alice")
    page.click("#join")
    browser_page.expect(page.locator("#password")).to_be_visible()
    page.fill("#password", "wrong")
    page.click("#join")
    browser_page.expect(page.locator("#login-error")).to_have_text("Wrong password.")
    page.fill("#password", "s3cret")
    page.click("#join")
    browser_page.expect(page.locator("#status")).to_have_text("online")
    browser_page.expect(page.locator("#me")).to_have_text("alice")


def test_taken_nick_asks_again(browser_page: BrowserPage, servers: Servers, chat: ChatServer) -> None:
    servers.terminal(chat, "alice")
    page = browser_page.page
    page.goto(url(chat))
    page.fill("#nick", "Alice")
    page.click("#join")
    browser_page.expect(page.locator("#login-error")).to_contain_text("taken")
    page.fill("#nick", "alice2")
    page.click("#join")
    browser_page.expect(page.locator("#me")).to_have_text("alice2")


def test_history_recalls_sent_lines(browser_page: BrowserPage, servers: Servers, chat: ChatServer) -> None:
    bob = servers.terminal(chat, "bob")
    page = login(browser_page, chat, "alice")
    for line in ("first", "second"):
        say(page, line)
        assert bob.expect(r"^alice: ").string == f"alice: {line}"
    page.press("#input", "ArrowUp")
    browser_page.expect(page.locator("#input")).to_have_value("second")
    page.press("#input", "ArrowUp")
    browser_page.expect(page.locator("#input")).to_have_value("first")
    page.press("#input", "ArrowDown")
    page.press("#input", "ArrowDown")
    browser_page.expect(page.locator("#input")).to_have_value("")


def test_binary_and_overlong_lines_get_error_lines(browser_page: BrowserPage, servers: Servers) -> None:
    server = servers.start(max_line_bytes=64)
    page = login(browser_page, server, "alice")
    page.evaluate("() => window.geventChat.state.ws.send(new Uint8Array([1, 2, 3]))")
    sees(browser_page, "binary messages are not supported")
    page.evaluate("() => window.geventChat.state.ws.send('x'.repeat(65))")  # past the page's own check
    sees(browser_page, "line too long (limit 64 bytes)")
    browser_page.expect(page.locator("#status")).to_have_text("online")  # the connection stays


@pytest.mark.timeout(20)  # a restart, then the page's reconnect backoff
def test_reconnects_after_a_server_restart_and_rejoins_the_room(
    browser_page: BrowserPage, servers: Servers
) -> None:
    first = servers.start()
    port = first.web_address[1]
    page = login(browser_page, first, "alice")
    say(page, "/join dev")
    browser_page.expect(page.locator("#room")).to_have_text("#dev")
    watch_close(page)
    servers.stop(first)  # the page is told, then closed with 1001
    sees(browser_page, "*** server shutting down")
    assert page.evaluate("() => window.wsClosed") == [1001, True]
    second = servers.start(web_port=port)  # the same port, a new server
    sees(browser_page, "registered again as alice")
    browser_page.expect(page.locator("#status")).to_have_text("online")
    sees(browser_page, "*** you joined #dev")
    browser_page.expect(page.locator("#room")).to_have_text("#dev")
    carol = servers.terminal(second, "carol")
    carol.send("/join dev")
    carol.expect(r"^\*\*\* you joined #dev$")
    carol.send("/who")
    assert carol.expect(r"users? in #dev").string == "*** 2 users in #dev: @alice, carol"
    carol.send("welcome back")
    sees(browser_page, "carol: welcome back")


def test_quit_returns_to_the_login_without_reconnecting(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    bob = servers.terminal(chat, "bob")
    page = login(browser_page, chat, "alice")
    bob.expect(r"^\*\*\* alice joined #lobby$")
    watch_close(page)
    say(page, "/quit lunch")
    assert bob.read_line() == "*** alice left (lunch)"
    browser_page.expect(page.locator("#log li", has_text="*** bye")).to_have_count(1)  # the log is hidden now
    browser_page.page.wait_for_function("() => window.wsClosed !== undefined")
    assert page.evaluate("() => window.wsClosed") == [1000, True]
    browser_page.expect(page.locator("#login-note")).to_have_text("You left the chat.")
    browser_page.expect(page.locator("#status")).to_have_text("left")
    # No reconnect: three times the first retry's longest delay, and no new connection.
    with pytest.raises(gevent.Timeout), gevent.Timeout(1.5):
        bob.expect(r"joined")
    assert len(chat.connections) == 1


# -- what the page says about itself ------------------------------------------------------


def test_status_before_joining_and_after_a_refused_nick(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    servers.terminal(chat, "alice")
    page = browser_page.page
    page.goto(url(chat))
    status = page.locator("#status")
    browser_page.expect(status).to_have_text("not joined")  # not "offline": nothing has failed
    page.fill("#nick", "alice")
    page.click("#join")
    browser_page.expect(page.locator("#login-error")).to_contain_text("taken")
    browser_page.expect(status).to_have_text("not joined")  # connected, and waiting for a nick
    page.fill("#nick", "alice2")
    page.click("#join")
    browser_page.expect(status).to_have_text("online")
    assert browser_page.errors == []


STATUS_RECORDER = """() => {
  window.statuses = [];
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) window.statuses.push(n.textContent);
  }).observe(document.getElementById("status"), { childList: true });
}"""


@pytest.mark.timeout(20)  # three failed reconnects: 0.5 + 1 + 2 s at most, then the checks
def test_reconnect_countdown_counts_down_then_says_connecting(
    browser_page: BrowserPage, servers: Servers
) -> None:
    server = servers.start()
    page = login(browser_page, server, "alice")
    page.evaluate(STATUS_RECORDER)
    servers.stop(server)  # and nothing listens on its port again: every retry fails
    # The third retry waits 1 to 2 s (equal jitter): whole seconds, counted down.
    wanted = ["reconnecting in 2 s", "reconnecting in 1 s", "connecting…"]
    page.wait_for_function(
        "w => window.statuses.some((_, i) => w.every((t, j) => window.statuses[i + j] === t))",
        arg=wanted,
        timeout=8000,
    )
    seen = page.evaluate("() => window.statuses")
    for shown, after in itertools.pairwise(seen):
        m = re.fullmatch(r"reconnecting in (\d+) s", shown)
        if m is None:
            assert shown in ("connecting…", "online"), seen
            continue
        n = re.fullmatch(r"reconnecting in (\d+) s", after)
        assert after == "connecting…" or (n is not None and int(n[1]) < int(m[1])), seen


def test_quit_clears_the_header_and_says_goodbye_calmly(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    page = login(browser_page, chat, "alice")
    say(page, "/join dev")
    browser_page.expect(page.locator("#room")).to_have_text("#dev")
    say(page, "/quit")
    note = page.locator("#login-note")
    browser_page.expect(note).to_have_text("You left the chat.")
    browser_page.expect(page.locator("#login-error")).to_have_text("")
    browser_page.expect(page.locator("#room")).to_have_text("gevent-chat")
    browser_page.expect(page.locator("#me")).to_have_text("")
    browser_page.expect(page).to_have_title("gevent-chat")
    colours = page.evaluate(
        "() => ['login-note', 'login-error'].map(id => getComputedStyle(document.getElementById(id)).color)"
    )
    assert colours[0] != colours[1]  # not in the error colour
    assert page.locator("#login-note").get_attribute("role") == "status"


def test_a_line_over_the_limit_is_refused_before_sending(browser_page: BrowserPage, servers: Servers) -> None:
    server = servers.start(max_line_bytes=64)
    bob = servers.terminal(server, "bob")
    page = login(browser_page, server, "alice")
    bob.expect(r"^\*\*\* alice joined #lobby$")
    assert page.locator("body").get_attribute("data-max-line-bytes") == "64"
    too_long = "é" * 33  # 33 characters, 66 bytes in UTF-8
    page.fill("#input", too_long)
    browser_page.expect(page.locator("#input")).to_have_attribute("aria-invalid", "true")
    browser_page.expect(page.locator("#input-hint")).to_have_text("66 bytes, 2 over the limit of 64")
    page.press("#input", "Enter")
    sees(browser_page, "*** not sent: the line is 66 bytes, the server takes at most 64")
    browser_page.expect(page.locator("#input")).to_have_value(too_long)  # kept, to shorten
    page.press("#input", "Backspace")
    browser_page.expect(page.locator("#input")).to_have_attribute("aria-invalid", "false")
    browser_page.expect(page.locator("#input-hint")).to_be_hidden()
    page.press("#input", "Enter")  # 64 bytes: just fits
    assert bob.read_line() == f"alice: {'é' * 32}"
    log = page.locator("#log li")
    browser_page.expect(log.filter(has_text=f"alice: {'é' * 32}")).to_have_count(1)
    assert log.filter(has_text=too_long).count() == 0  # never shown as sent
    assert log.filter(has_text="line too long").count() == 0  # the server never saw it
    assert browser_page.errors == []


def test_ping_shows_the_lag_without_an_internal_token(browser_page: BrowserPage, chat: ChatServer) -> None:
    page = login(browser_page, chat, "alice")
    say(page, "/ping")
    log = page.locator("#log li")
    browser_page.expect(
        log.filter(has_text=re.compile(r"^\d\d:\d\d\*\*\* pong \(lag \d+\.\d ms\)$"))
    ).to_have_count(1)
    browser_page.expect(log.filter(has_text=re.compile(r"^\d\d:\d\d/ping$"))).to_have_count(1)
    say(page, "/ping mine")
    browser_page.expect(
        log.filter(has_text=re.compile(r"\*\*\* pong mine \(lag \d+\.\d ms\)$"))
    ).to_have_count(1)
    assert "lag1" not in page.locator("#log").inner_text()


def test_the_pages_own_who_stays_out_of_the_log(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    servers.terminal(chat, "bob")
    page = login(browser_page, chat, "alice")
    users = page.locator("#user-list li")
    browser_page.expect(users).to_have_count(2)  # the page's /who was answered
    replies = page.locator("#log li", has_text=re.compile(r"users? in #"))
    assert replies.count() == 0
    say(page, "/join dev")
    sees(browser_page, "*** you joined #dev")
    browser_page.expect(users).to_have_count(1)
    say(page, "/who")  # one the user asked for is shown
    sees(browser_page, "*** 1 user in #dev: @alice")  # its creator runs it
    browser_page.expect(replies).to_have_count(1)


def test_member_marks_are_read_from_who_names(browser_page: BrowserPage, chat: ChatServer) -> None:
    browser_page.page.goto(url(chat))
    got = browser_page.page.evaluate(
        "ns => ns.map(n => window.geventChat.member(n))", ["@alice", "+bob", "carol"]
    )
    assert got == [
        {"nick": "alice", "mark": "@"},
        {"nick": "bob", "mark": "+"},
        {"nick": "carol", "mark": ""},
    ]


# -- room rules on the page ---------------------------------------------------------------


def test_the_header_shows_the_topic_and_the_list_marks_operators(
    browser_page: BrowserPage, chat: ChatServer
) -> None:
    page = login(browser_page, chat, "alice")
    say(page, "/join dev")
    sees(browser_page, "*** you joined #dev")
    users = page.locator("#user-list li")
    browser_page.expect(users).to_have_text(["@alice (you)"])  # the creator runs the room
    say(page, "/topic release day")
    browser_page.expect(page.locator("#topic")).to_have_text("release day")
    bob = ChatClient(chat.address)
    try:
        bob.register("bob")
        bob.send("/join #dev")
        bob.expect(r"^\*\*\* topic: release day \(set by alice\)$")
        browser_page.expect(users).to_have_text(["@alice (you)", "bob"])
        say(page, "/voice bob")
        browser_page.expect(users).to_have_text(["@alice (you)", "+bob"])
        say(page, "/join lobby")
        browser_page.expect(page.locator("#topic")).to_be_hidden()
    finally:
        bob.close()
    assert browser_page.errors == []


def test_a_kick_is_seen_by_the_kicker_and_the_kicked_on_the_page(
    browser_page: BrowserPage, chat: ChatServer, servers: Servers
) -> None:
    page = login(browser_page, chat, "alice")
    say(page, "/join dev")
    sees(browser_page, "*** you joined #dev")
    bob = servers.terminal(chat, "bob")
    bob.send("/join #dev")
    bob.expect(r"^\*\*\* you joined #dev$")
    users = page.locator("#user-list li")
    browser_page.expect(users).to_have_text(["@alice (you)", "bob"])
    # The page's user kicks: the page shows it and drops bob from the list; bob is told.
    say(page, "/kick bob spamming")
    sees(browser_page, "*** bob was kicked by alice (spamming)")
    browser_page.expect(users).to_have_text(["@alice (you)"])
    bob.expect(r"^\*\*\* you were kicked from #dev by alice \(spamming\)$")
    bob.expect(r"^\*\*\* you joined #lobby$")
    # Then the page's user is kicked: sent to the lobby, which the header and list follow.
    bob.send("/join #ops")
    bob.expect(r"^\*\*\* you joined #ops$")
    say(page, "/join ops")
    sees(browser_page, "*** you joined #ops")
    bob.send("/kick alice enough")
    sees(browser_page, "*** you were kicked from #ops by bob (enough)")
    browser_page.expect(page.locator("#room")).to_have_text("#lobby")
    browser_page.expect(users).to_have_text(["alice (you)"])
    assert browser_page.errors == []
