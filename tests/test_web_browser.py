"""The browser page in Chromium against the real chat server: loading, logging in, leaving.

Each test starts a ``ChatServer`` in this process with its web port (and an
IRC port) on, and drives pages in headless Chromium (``tests.browser``:
Playwright runs on its own thread, so the server keeps serving while a test
waits on the browser).  The page speaks IRC over ``/ws``; other users are
raw TCP line clients, as ``nc`` would be.  Several rooms at once, kicks,
the phone layout and the screenshots are in ``test_web_rooms.py``; the
page's IRC codec and model alone in ``test_web_irc_client.py``.
"""

from __future__ import annotations

import itertools
import random
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import gevent
import pytest

from gevent_chat.client.render import nick_colour
from gevent_chat.core.web import CSP
from gevent_chat.server import ChatServer
from tests.web_chat import Servers, active_log, login, running_servers, say, sees, url, watch_close

if TYPE_CHECKING:  # imported at run time as the plugin below, not before it
    from tests.browser import BrowserPage

pytest_plugins = ["tests.browser"]

Pages = Callable[[], "BrowserPage"]


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from running_servers()


@pytest.fixture
def chat(servers: Servers) -> ChatServer:
    return servers.start()


# -- the page itself ----------------------------------------------------------------------


def test_page_loads_with_csp_and_no_console_errors(browser_page: BrowserPage, chat: ChatServer) -> None:
    page = browser_page.page
    response = page.goto(url(chat))
    assert response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    browser_page.expect(page.locator("#login")).to_be_visible()
    # app.js is a module: its imports (rules.js, irc.js, model.js) loaded under the CSP too.
    page.wait_for_function("() => window.geventChat !== undefined")
    assert page.evaluate("typeof window.geventChat.nickColour") == "function"
    assert page.evaluate("typeof window.geventChat.irc.parse") == "function"
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


# -- one user, one room ----------------------------------------------------------------------


def test_a_browser_user_and_a_terminal_user_talk_in_the_lobby(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    grace = servers.terminal(chat, "grace")
    page = login(browser_page, chat, "alice")
    grace.expect(r"^\*\*\* alice joined #lobby$")
    say(page, "hi grace, I am in a browser")
    assert grace.read_line() == "alice: hi grace, I am in a browser"
    sees(browser_page, "alice: hi grace, I am in a browser")  # echoed by the server
    grace.send("hello alice, I am on nc")
    sees(browser_page, "grace: hello alice, I am on nc")
    browser_page.expect(page.locator("#user-list li")).to_have_count(2)
    assert browser_page.errors == []


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
    # A topic, in the header, is text too.
    carol = servers.irc(chat, "carol", "#x")
    carol.send(f"TOPIC #x :{img}")
    carol.expect("TOPIC")
    say(page, "/join #x")
    browser_page.expect(page.locator("#topic")).to_have_text(img)
    for one in (page, bob_page):
        assert one.locator("#logs img, #logs script, #logs a, #logs b").count() == 0
        assert one.locator("img, a, b").count() == 0
    assert browser_page.dialogs == bob.dialogs == []
    assert browser_page.errors == bob.errors == []


def test_line_kinds_get_their_marks(browser_page: BrowserPage, servers: Servers, chat: ChatServer) -> None:
    bob = servers.terminal(chat, "bob")
    bob.send("earlier")
    page = login(browser_page, chat, "alice")
    bob.expect(r"^\*\*\* alice joined #lobby$")
    bob.send("/me waves")
    items = active_log(page).locator("li")
    history = items.filter(has_text="earlier")
    # Said before alice came: the time the server sent with it, in italics.
    browser_page.expect(history).to_have_class(re.compile(r"\bkind-chat\b.*\bhistory\b"))
    browser_page.expect(history.locator(".stamp")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", history.locator(".stamp").get_attribute("datetime"))
    browser_page.expect(items.filter(has_text="waves")).to_have_class(re.compile(r"\bkind-action\b"))
    browser_page.expect(items.filter(has_text="you joined #lobby")).to_have_class(
        re.compile(r"\bkind-event\b")
    )
    colour = nick_colour("bob")
    browser_page.expect(history.locator(".nick")).to_have_class(re.compile(rf"\bc{colour}\b"))
    # A line from another day shows its date (sent as the server would send an old one).
    old = "@time=2020-01-02T12:04:05.000Z :bob!b@h PRIVMSG #lobby :from long ago"
    page.evaluate(
        "line => window.geventChat.state.ws.dispatchEvent(new MessageEvent('message', {data: line}))", old
    )
    stamp = items.filter(has_text="from long ago").locator(".stamp")
    browser_page.expect(stamp).to_have_text(re.compile(r"^2020-01-0[23] \d\d:\d\d$"))
    browser_page.expect(stamp).to_have_attribute("datetime", "2020-01-02T12:04:05.000Z")
    say(page, "/nosuchcommand")
    browser_page.expect(items.filter(has_text="Unknown command")).to_have_class(re.compile(r"\bkind-error\b"))
    assert browser_page.errors == []


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


# -- logging in ------------------------------------------------------------------------------


def test_password_is_asked_for_then_checked(browser_page: BrowserPage, servers: Servers) -> None:
    server = servers.start(password="s3cret", password_delay=0)
    page = browser_page.page
    page.goto(url(server))
    page.fill("#nick", "alice")
    page.click("#join")
    browser_page.expect(page.locator("#login-error")).to_have_text("This server needs a password.")
    browser_page.expect(page.locator("#password")).to_be_focused()
    page.fill("#password", "wrong")
    page.click("#join")
    browser_page.expect(page.locator("#login-error")).to_have_text("Wrong password.")
    browser_page.expect(page.locator("#status")).to_have_text("not joined")
    page.fill("#password", "s3cret")
    page.click("#join")
    browser_page.expect(page.locator("#status")).to_have_text("online")
    browser_page.expect(page.locator("#me")).to_have_text("alice")


def test_status_before_joining_and_after_a_taken_nick(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    servers.terminal(chat, "alice")
    page = browser_page.page
    page.goto(url(chat))
    status = page.locator("#status")
    browser_page.expect(status).to_have_text("not joined")  # not "offline": nothing has failed
    page.fill("#nick", "Alice")
    page.click("#join")
    browser_page.expect(page.locator("#login-error")).to_contain_text("in use")
    browser_page.expect(status).to_have_text("not joined")  # connected, and waiting for a nick
    page.fill("#nick", "alice2")
    page.click("#join")
    browser_page.expect(status).to_have_text("online")
    browser_page.expect(page.locator("#me")).to_have_text("alice2")
    assert len(chat.connections) == 2  # the same connection took the second nick
    assert browser_page.errors == []


def test_an_unreachable_server_is_offline(browser_page: BrowserPage, servers: Servers) -> None:
    server = servers.start()
    page = browser_page.page
    page.goto(url(server))
    servers.stop(server)
    page.fill("#nick", "alice")
    page.click("#join")
    browser_page.expect(page.locator("#status")).to_have_text("offline")
    browser_page.expect(page.locator("#login-error")).to_have_text("Could not reach the server.")


# -- leaving and coming back -------------------------------------------------------------------


def test_quit_returns_to_the_login_without_reconnecting(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    bob = servers.terminal(chat, "bob")
    page = login(browser_page, chat, "alice")
    bob.expect(r"^\*\*\* alice joined #lobby$")
    watch_close(page)
    say(page, "/quit lunch")
    assert bob.read_line() == "*** alice left (Quit: lunch)"  # as IRC servers word it
    page.wait_for_function("() => window.wsClosed !== undefined")
    assert page.evaluate("() => window.wsClosed")[1] is True
    note = page.locator("#login-note")
    browser_page.expect(note).to_have_text("You left the chat.")
    browser_page.expect(page.locator("#login-error")).to_have_text("")
    browser_page.expect(page.locator("#status")).to_have_text("left")
    browser_page.expect(page.locator("#room")).to_have_text("gevent-chat")
    browser_page.expect(page.locator("#me")).to_have_text("")
    browser_page.expect(page).to_have_title("gevent-chat")
    colours = page.evaluate(
        "() => ['login-note', 'login-error'].map(id => getComputedStyle(document.getElementById(id)).color)"
    )
    assert colours[0] != colours[1]  # not in the error colour
    # No reconnect: three times the first retry's longest delay, and no new connection.
    with pytest.raises(gevent.Timeout), gevent.Timeout(1.5):
        bob.expect(r"joined")
    assert len(chat.connections) == 1


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
    sees(browser_page, "connection lost")
    browser_page.expect(page.locator("#room-note")).to_have_text("not joined")
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


# -- what is sent ------------------------------------------------------------------------------


def test_a_line_over_the_limit_is_refused_before_sending(browser_page: BrowserPage, servers: Servers) -> None:
    server = servers.start(max_line_bytes=64)
    bob = servers.terminal(server, "bob")
    page = login(browser_page, server, "alice")
    bob.expect(r"^\*\*\* alice joined #lobby$")
    page.fill("#input", "é" * 33)  # 66 bytes of UTF-8
    browser_page.expect(page.locator("#input")).to_have_attribute("aria-invalid", "true")
    browser_page.expect(page.locator("#input-hint")).to_have_text("66 bytes, 2 over the limit of 64")
    page.press("#input", "Enter")
    sees(browser_page, "not sent: the line is 66 bytes, the server takes at most 64")
    browser_page.expect(page.locator("#input")).to_have_value("é" * 33)  # kept, to be shortened
    page.fill("#input", "é" * 32)
    browser_page.expect(page.locator("#input")).to_have_attribute("aria-invalid", "false")
    browser_page.expect(page.locator("#input-hint")).to_be_hidden()
    page.press("#input", "Enter")
    assert bob.read_line() == "alice: " + "é" * 32
