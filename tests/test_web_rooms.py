"""The page with several rooms at once, in Chromium, against the real server.

A browser user (alice) in three rooms, with a line user on TCP (grace, as
``nc`` would be) and an IRC user (bob): unread counts and switching,
private conversations, joining from the server's list and leaving, a
reconnect that rejoins every room, the phone layout, keyboard-only use and
desktop notifications.  With ``GEVENT_CHAT_SCREENSHOT=1``,
``test_screenshots_light_and_dark_desktop_and_phone`` writes the pictures in
``docs/`` (``web-*.png`` and the README's ``screenshot.png``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gevent_chat.server import ChatServer
from tests.helpers import ChatClient
from tests.irc_client import IrcClient
from tests.web_chat import Servers, active_log, login, room_entry, running_servers, say, sees, url

if TYPE_CHECKING:  # imported at run time as the plugin below, not before it
    from tests.browser import BrowserPage

pytest_plugins = ["tests.browser"]

Pages = Callable[[], "BrowserPage"]
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from running_servers()


@pytest.fixture
def chat(servers: Servers) -> ChatServer:
    return servers.start()


def join(browser: BrowserPage, room: str) -> None:
    """Type ``/join room`` and wait until the page shows it."""
    page = browser.page
    say(page, f"/join {room}")
    browser.expect(page.locator("#room")).to_have_text(room)
    browser.expect(page.locator("#user-list")).to_contain_text(page.locator("#me").text_content())


def in_three_rooms(
    browser: BrowserPage, servers: Servers, chat: ChatServer
) -> tuple[Any, ChatClient, IrcClient]:
    """alice (the page) in #lobby, #dev and #ops; grace (nc) in #lobby; bob (IRC) in all three."""
    grace = servers.terminal(chat, "grace")
    bob = servers.irc(chat, "bob", "#lobby", "#dev", "#ops")
    page = login(browser, chat, "alice")
    join(browser, "#dev")
    join(browser, "#ops")
    bob.send("PING sync")  # everything alice's joins caused has reached bob
    bob.collect(["PONG"])
    grace.expect(r"^\*\*\* alice joined #lobby$")
    return page, grace, bob


def said_to(irc: IrcClient, target: str) -> str:
    """The text of the next PRIVMSG to ``target`` that ``irc`` receives."""
    while True:
        msg = irc.expect("PRIVMSG")
        if msg.params[0] == target:
            return msg.params[1]


def unread(page: Any, room: str) -> Any:
    return room_entry(page, room).locator(".unread")


# -- several rooms at once ---------------------------------------------------------------------


def test_three_rooms_count_unreads_and_switch_keeping_scrollback(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    page, grace, bob = in_three_rooms(browser_page, servers, chat)
    expect = browser_page.expect
    expect(page.locator("#room-list .room-entry")).to_have_count(4)  # the server's window and three rooms
    expect(room_entry(page, "#ops")).to_have_attribute("aria-current", "true")
    grace.send("hello from nc")  # to #lobby
    bob.send("PRIVMSG #dev :a plain line")
    bob.send("PRIVMSG #dev :alice: the build is green")  # names her
    expect(unread(page, "#lobby")).to_have_text("1")
    expect(unread(page, "#dev")).to_have_text("2")
    expect(unread(page, "#dev")).to_have_class(re.compile(r"\bmention\b"))
    expect(unread(page, "#lobby")).not_to_have_class(re.compile(r"\bmention\b"))
    expect(room_entry(page, "#dev")).to_have_attribute("aria-label", "#dev, 2 unread, mentions you")
    expect(page).to_have_title("(3) #ops - gevent-chat")
    # The line user and the IRC user meet in the lobby too.
    bob.send("PRIVMSG #lobby :hi grace, from irc")
    assert grace.expect(r"^bob: ").string == "bob: hi grace, from irc"

    room_entry(page, "#dev").click()
    expect(page.locator("#room")).to_have_text("#dev")
    expect(unread(page, "#dev")).to_have_count(0)
    sees(browser_page, "bob: alice: the build is green")
    expect(active_log(page).locator("li.mention")).to_have_count(1)
    expect(page.locator("#user-list .member")).to_have_text(["@bob", "alice (you)"])  # bob made #dev
    expect(page).to_have_title("(2) #dev - gevent-chat")
    say(page, "thanks, bob")
    assert said_to(bob, "#dev") == "thanks, bob"
    say(page, "/nick alicia")  # known by the new nick in every room
    assert bob.expect("NICK").params == ["alicia"]
    expect(page.locator("#me")).to_have_text("alicia")
    expect(page.locator("#user-list .member")).to_have_text(["@bob", "alicia (you)"])
    sees(browser_page, "you are now known as alicia")

    # Scrollback stays where it was left.
    for i in range(80):
        grace.send(f"lobby line {i}")
    room_entry(page, "#lobby").click()
    sees(browser_page, "grace: lobby line 79")
    log = active_log(page)
    log.evaluate("log => { log.scrollTop = 200; }")
    room_entry(page, "#ops").click()
    expect(page.locator("#room")).to_have_text("#ops")
    grace.send("one more while away")
    expect(unread(page, "#lobby")).to_have_text("1")
    room_entry(page, "#lobby").click()
    sees(browser_page, "one more while away")
    assert log.evaluate("log => log.scrollTop") == 200  # not thrown to the top, nor the bottom
    expect(log.locator("li", has_text="lobby line 0")).to_have_count(1)  # nothing was lost
    expect(page.locator("#user-list .member")).to_have_count(3)
    # Away members are dimmed, with the reason on hover (away-notify).
    bob.send("AWAY :at lunch")
    away = page.locator("#user-list .member.away")
    expect(away).to_have_text("bob")
    expect(away).to_have_attribute("title", "away: at lunch")
    expect(away).to_have_attribute("aria-label", "bob, away")
    bob.send("AWAY")
    expect(away).to_have_count(0)
    assert browser_page.errors == []


def test_a_private_conversation_with_an_irc_user_and_a_line_user(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    page, grace, bob = in_three_rooms(browser_page, servers, chat)
    expect = browser_page.expect
    bob.send("PRIVMSG alice :psst, a word?")
    expect(unread(page, "bob")).to_have_text("1")
    expect(unread(page, "bob")).to_have_class(re.compile(r"\bmention\b"))
    room_entry(page, "bob").click()
    expect(page.locator("#room")).to_have_text("bob")
    expect(page.locator("#users")).to_be_hidden()  # a conversation has no member list
    sees(browser_page, "bob: psst, a word?")
    say(page, "sure, go ahead")
    assert said_to(bob, "bob") == "sure, go ahead"
    sees(browser_page, "alice: sure, go ahead")  # echoed by the server: it was sent
    assert len(page.locator('#logs .log[data-room="#ops"] li', has_text="psst").all()) == 0

    # From a room's member list: a conversation with the line user.
    room_entry(page, "#lobby").click()
    page.locator("#user-list .member", has_text="grace").click()
    page.get_by_role("menuitem", name="Private message").click()
    expect(page.locator("#room")).to_have_text("grace")
    say(page, "hi grace, just us")
    assert grace.expect(r"^\*alice\* ").string == "*alice* hi grace, just us"
    grace.send("/msg alice got it")
    sees(browser_page, "grace: got it")
    expect(page.locator("#room-list .room-item.kind-query")).to_have_count(2)
    # Closed from the page: gone from the list, and the server is told nothing.
    page.click("#leave")
    expect(page.locator("#room-list .room-item.kind-query")).to_have_count(1)
    assert browser_page.errors == []


def test_join_from_the_public_rooms_and_leave(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    bob = servers.irc(chat, "bob", "#music")
    bob.send("TOPIC #music :vinyl only")
    carol = servers.irc(chat, "carol", "#music")
    page = login(browser_page, chat, "alice")
    expect = browser_page.expect
    page.click("#join-open")
    expect(page.locator("#join-dialog")).to_be_visible()
    expect(page.locator("#join-name")).to_be_focused()
    rooms = page.locator("#public-list li")
    expect(rooms).to_have_count(2)
    expect(rooms.first).to_contain_text("#music 2 usersvinyl only")  # the biggest first, with its topic
    expect(rooms.nth(1)).to_contain_text("#lobby 1 user")
    expect(rooms.nth(1).get_by_role("button")).to_have_text("Open")  # already in it
    page.get_by_role("button", name="Join #music").click()
    expect(page.locator("#join-dialog")).to_be_hidden()
    expect(page.locator("#room")).to_have_text("#music")
    expect(page.locator("#user-list .member")).to_have_count(3)
    carol.expect("JOIN")
    # By name, from the same dialog.
    page.click("#join-open")
    page.fill("#join-name", "quiet")
    page.press("#join-name", "Enter")
    expect(page.locator("#room")).to_have_text("#quiet")
    # Leaving: the room goes from the list, and others see the PART.
    room_entry(page, "#music").click()
    page.click("#leave")
    part = carol.expect("PART")
    assert (part.source.split("!")[0], part.params[0]) == ("alice", "#music")
    expect(room_entry(page, "#music")).to_have_count(0)
    expect(page.locator("#room")).not_to_have_text("#music")
    bob.send("PRIVMSG #music :she left")  # and hears no more of it
    carol.expect("PRIVMSG")
    expect(page.locator('#logs .log[data-room="#music"]')).to_have_count(0)
    assert browser_page.errors == []


@pytest.mark.timeout(25)  # a restart, then the page's reconnect backoff
def test_reconnect_after_a_server_restart_rejoins_all_three_rooms(
    browser_page: BrowserPage, servers: Servers
) -> None:
    first = servers.start()
    port = first.web_address[1]
    page, _, _ = in_three_rooms(browser_page, servers, first)
    expect = browser_page.expect
    servers.stop(first)
    sees(browser_page, "connection lost", room="#dev")
    expect(page.locator("#status")).to_have_text(re.compile(r"^(reconnecting in \d+ s|connecting…)$"))
    expect(page.locator("#room-note")).to_have_text("not joined")
    expect(page.locator("#user-list .member")).to_have_count(0)  # nobody known to be here while away
    second = servers.start(web_port=port)  # the same port, a new server
    expect(page.locator("#status")).to_have_text("online", timeout=15000)
    for room in ("#lobby", "#dev", "#ops"):
        sees(browser_page, f"you joined {room}", room=room)
    expect(page.locator("#room")).to_have_text("#ops")  # still where she was
    carol = servers.irc(second, "carol")
    for room in ("#lobby", "#dev", "#ops"):
        carol.send(f"NAMES {room}")
        names = carol.expect("353")
        # Back in every room; she made #dev and #ops anew on this server (the lobby has no operators).
        assert names.params[-1].split() == ["alice" if room == "#lobby" else "@alice"], room
    carol.send("JOIN #dev")  # +n: only members speak in it
    carol.send("PRIVMSG #dev :welcome back")
    expect(unread(page, "#dev")).to_have_text("1")
    assert browser_page.errors == []


@pytest.mark.timeout(15)  # a reconnect after the backoff's first wait
def test_a_dropped_connection_rejoins_without_repeating_the_history(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    page, _, bob = in_three_rooms(browser_page, servers, chat)
    frames: list[str] = []  # appended on the browser thread, read here

    def on_websocket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", on_websocket)
    bob.send("PRIVMSG #dev :said once")
    room_entry(page, "#dev").click()
    sees(browser_page, "bob: said once")
    page.evaluate("() => window.geventChat.state.ws.close()")
    sees(browser_page, "connection lost")
    browser_page.expect(page.locator("#status")).to_have_text("online", timeout=8000)
    browser_page.expect(active_log(page).locator("li", has_text="you joined #dev")).to_have_count(2)
    bob.send("PRIVMSG #dev :said after")
    sees(browser_page, "bob: said after")
    # The server did replay it (in its history batch), and the page kept the one it had.
    assert [f for f in frames if "batch=" in f and f.endswith("PRIVMSG #dev :said once")]
    browser_page.expect(active_log(page).locator("li", has_text="said once")).to_have_count(1)
    assert browser_page.errors == []


# -- a phone, 200 % zoom, the keyboard ------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [(390, 844), (640, 400)],  # a phone; a 1280 x 800 window at 200 % zoom
)
def test_narrow_layout_folds_rooms_and_members_into_drawers(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer, width: int, height: int
) -> None:
    page, grace, _ = in_three_rooms(browser_page, servers, chat)
    expect = browser_page.expect
    page.set_viewport_size({"width": width, "height": height})
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(page.locator("#users")).to_be_hidden()
    grace.send("a line for the lobby")
    toggle = page.locator("#rooms-toggle")
    expect(toggle.locator(".badge")).to_have_text("1")
    expect(toggle).to_have_attribute("aria-label", "Rooms, 1 unread")
    toggle.click()
    expect(page.locator("#sidebar")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    room_entry(page, "#lobby").click()
    expect(page.locator("#sidebar")).to_be_hidden()  # closed by choosing
    expect(page.locator("#room")).to_have_text("#lobby")
    sees(browser_page, "grace: a line for the lobby")
    page.click("#users-toggle")
    expect(page.locator("#users")).to_be_visible()
    expect(page.locator("#user-list .member")).to_have_count(3)
    page.keyboard.press("Escape")
    expect(page.locator("#users")).to_be_hidden()
    toggle.click()
    expect(page.locator("#sidebar")).to_be_visible()
    page.mouse.click(width - 5, height // 2)  # beside the drawer
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    # Nothing wider than the screen: no sideways scrolling, the composer in view.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    for part in ("#input", "#status", "#room"):
        box = page.locator(part).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= width, part
        assert box["y"] + box["height"] <= height, part
    assert browser_page.errors == []


def test_keyboard_only(browser_page: BrowserPage, servers: Servers, chat: ChatServer) -> None:
    servers.terminal(chat, "grace")
    bob = servers.irc(chat, "bob", "#lobby")
    page = browser_page.page
    expect = browser_page.expect
    page.goto(url(chat))
    expect(page.locator("#nick")).to_be_focused()  # autofocus
    page.keyboard.type("alice")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("online")
    expect(page.locator("#input")).to_be_focused()
    page.keyboard.type("/join #dev")
    page.keyboard.press("Enter")
    expect(page.locator("#room")).to_have_text("#dev")
    # Alt+Up/Down step through the list (server, #dev, #lobby), and say where to.
    page.keyboard.press("Alt+ArrowDown")
    expect(page.locator("#room")).to_have_text("#lobby")
    expect(page.locator("#announce")).to_have_text("#lobby")
    page.keyboard.press("Alt+ArrowUp")
    page.keyboard.press("Alt+ArrowUp")
    expect(page.locator("#room")).to_have_text("gevent-chat")  # the server's window, named by NETWORK
    page.keyboard.press("Alt+ArrowUp")  # round to the end
    expect(page.locator("#room")).to_have_text("#lobby")
    expect(page.locator("#input")).to_be_focused()  # the keys did not move the focus
    # Shift+Tab from the input reaches the member list; Enter opens a member's menu.
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#user-list .member").last).to_be_focused()
    bob.send("PRIVMSG #lobby :the list is drawn again")  # and the focus stays put
    sees(browser_page, "bob: the list is drawn again")
    expect(page.locator("#user-list .member").last).to_be_focused()
    page.keyboard.press("Enter")
    menu = page.locator("#menu")
    expect(menu).to_be_visible()
    bob.send("PRIVMSG #lobby :again, with the menu open")
    expect(menu.get_by_role("menuitem", name="Private message")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu.get_by_role("menuitem", name="Who is this?")).to_be_focused()
    sees(browser_page, "bob: again, with the menu open")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(page.locator("#user-list .member").last).to_be_focused()  # back where it was
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # Private message
    expect(page.locator("#room")).to_have_text("grace")
    # The join dialog: Tab to it, type a name, Enter; Escape closes it unchanged.
    page.locator("#join-open").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#join-name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#join-dialog")).to_be_hidden()
    page.keyboard.press("Enter")
    page.keyboard.type("#kb")
    page.keyboard.press("Enter")
    expect(page.locator("#room")).to_have_text("#kb")
    bob.send("PRIVMSG #lobby :still here")
    expect(unread(page, "#lobby")).to_have_text("1")
    assert browser_page.errors == []


# -- notifications ------------------------------------------------------------------------------

RECORD_NOTIFICATIONS = """
window.notified = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.notified.push([title, options.body]); }
};
"""


SET_HIDDEN = """hidden => {
  Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_mention_or_a_private_message_raises_a_desktop_notification(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    browser_page.context.add_init_script(RECORD_NOTIFICATIONS)
    page, grace, bob = in_three_rooms(browser_page, servers, chat)
    expect = browser_page.expect
    expect(page.locator("#notify")).to_be_visible()  # not allowed yet: the page offers to ask
    browser_page.context.grant_permissions(["notifications"])
    page.click("#notify")
    expect(page.locator("#notify")).to_be_hidden()
    bob.send("PRIVMSG #dev :nothing for anyone")
    bob.send("PRIVMSG #dev :alice, lunch?")
    grace.send("/msg alice are you there?")
    page.wait_for_function("() => window.notified.length >= 2")
    assert sorted(page.evaluate("() => window.notified")) == [
        ["bob in #dev", "alice, lunch?"],
        ["grace, privately", "are you there?"],
    ]
    expect(page.locator("#announce")).to_have_text(re.compile(r": (alice, lunch|are you there)\?$"))
    bob.send("PRIVMSG #ops :alice: here, in the room on show")  # seen already: no notification
    sees(browser_page, "here, in the room on show")
    assert len(page.evaluate("() => window.notified")) == 2
    # The tab in the background: the room on show counts unreads too, and a mention there notifies.
    page.evaluate(SET_HIDDEN, True)
    bob.send("PRIVMSG #ops :alice: and now?")
    page.wait_for_function("() => window.notified.length === 3")
    assert page.evaluate("() => window.notified")[2] == ["bob in #ops", "alice: and now?"]
    expect(page).to_have_title("(4) #ops - gevent-chat")  # #dev 2, grace 1, and this one
    page.evaluate(SET_HIDDEN, False)  # looked at again: the room on show is read
    expect(page).to_have_title("(3) #ops - gevent-chat")


# -- the pictures ------------------------------------------------------------------------------


def test_screenshots_light_and_dark_desktop_and_phone(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer, tmp_path: Path
) -> None:
    # bob made #dev (its operator), set its topic and gave grace (nc) a voice; they talked.
    bob = servers.irc(chat, "bob", "#lobby", "#dev")
    bob.send("TOPIC #dev :release 2.0 on friday: tests green, docs done")
    grace = servers.terminal(chat, "grace")
    grace.send("/join dev")
    grace.expect(r"^\*\*\* you joined #dev$")
    bob.send("MODE #dev +v grace")
    grace.send("morning! the build is green again")  # before alice comes: history
    bob.send("PRIVMSG #dev :\x01ACTION waves from irssi\x01")
    grace.expect(r"^\* bob waves")
    page = login(browser_page, chat, "alice")
    join(browser_page, "#ops")
    join(browser_page, "#dev")
    say(page, "hi both, I am in a browser")
    grace.expect(r"^alice: hi both")
    grace.send("nice, and I am on nc")
    bob.send("PRIVMSG #lobby :alice: can you look at the flaky test?")
    bob.send("PRIVMSG alice :psst, lunch at one?")
    expect = browser_page.expect
    sees(browser_page, "grace: nice, and I am on nc")
    expect(active_log(page).locator("li.history")).to_have_count(2)
    expect(page.locator("#topic")).to_have_text("release 2.0 on friday: tests green, docs done")
    expect(page.locator("#user-list .member")).to_have_text(["@bob", "+grace", "alice (you)"])
    expect(unread(page, "bob")).to_have_text("1")
    expect(unread(page, "#lobby")).to_have_text("1")
    where = DOCS if os.environ.get("GEVENT_CHAT_SCREENSHOT") == "1" else tmp_path
    shots = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        shots.append(browser_page.screenshot(where / f"web-desktop-{scheme}.png"))
        page.set_viewport_size({"width": 390, "height": 700})
        shots.append(save_phone(page, where / f"web-phone-{scheme}.png"))
        if scheme == "light":
            page.click("#rooms-toggle")
            shots.append(save_phone(page, where / "web-phone-rooms-light.png"))
            page.keyboard.press("Escape")
        page.set_viewport_size({"width": 900, "height": 640})
    page.emulate_media(color_scheme="light")
    shots.append(browser_page.screenshot(where / "screenshot.png"))  # the README's
    for shot in shots:
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert browser_page.errors == []


def save_phone(page: Any, path: Path) -> Path:
    """What the page shows now, at the viewport's size (the phone's)."""
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path


# -- operators ---------------------------------------------------------------------------------


def test_an_operator_kicks_and_bans_from_the_member_menu(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    bob = servers.irc(chat, "bob")
    page = login(browser_page, chat, "alice")
    expect = browser_page.expect
    join(browser_page, "#ops")  # a new room: alice made it, so she is its operator
    bob.send("JOIN #ops")
    bob.expect("366")
    members = page.locator("#user-list .member")
    expect(members).to_have_text(["@alice (you)", "bob"])
    # The topic, from the Edit topic button, shown in the header.
    page.click("#topic-edit")
    expect(page.locator("#input")).to_be_focused()
    page.keyboard.type("ship it on friday")
    page.keyboard.press("Enter")
    expect(page.locator("#topic")).to_have_text("ship it on friday")
    assert bob.expect("TOPIC").params == ["#ops", "ship it on friday"]
    # Voice, then a mode, from the menus.
    members.filter(has_text="bob").click()
    page.get_by_role("menuitem", name="Give voice (+v)").click()
    assert bob.expect("MODE").params == ["#ops", "+v", "bob"]
    expect(members).to_have_text(["@alice (you)", "+bob"])
    page.click("#modes-open")
    page.get_by_role("menuitemcheckbox", name=re.compile(r"^Moderated")).click()
    assert bob.expect("MODE").params == ["#ops", "+m"]
    expect(page.locator("#room-note")).to_have_text("modes +mnt")
    page.click("#modes-open")
    moderated = page.get_by_role("menuitemcheckbox", name=re.compile(r"^Moderated"))
    expect(moderated).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("menuitemcheckbox", name=re.compile(r"^Invite only"))).to_have_attribute(
        "aria-checked", "false"
    )
    page.keyboard.press("Escape")
    expect(page.locator("#modes-open")).to_be_focused()
    # A kick: bob is out, and may come back.
    members.filter(has_text="bob").click()
    page.get_by_role("menuitem", name="Kick").click()
    assert bob.expect("KICK").params[:2] == ["#ops", "bob"]
    sees(browser_page, "alice kicked bob")
    expect(members).to_have_text(["@alice (you)"])
    bob.send("JOIN #ops")
    bob.expect("366")
    expect(members).to_have_text(["@alice (you)", "bob"])
    # A ban: the server puts bob out with it, and he cannot come back.
    members.filter(has_text="bob").click()
    page.get_by_role("menuitem", name="Ban").click()
    assert bob.expect("KICK").params == ["#ops", "bob", "banned"]
    sees(browser_page, "alice sets mode +b bob!*@*")
    expect(members).to_have_text(["@alice (you)"])
    bob.send("JOIN #ops")
    assert bob.expect("474").params[1] == "#ops"
    assert browser_page.errors == []


def test_being_kicked_and_banned_is_seen_from_the_page(
    browser_page: BrowserPage, servers: Servers, chat: ChatServer
) -> None:
    bob = servers.irc(chat, "bob", "#dev")  # bob made #dev: its operator
    page = login(browser_page, chat, "alice")
    expect = browser_page.expect
    join(browser_page, "#dev")
    expect(page.locator("#user-list .member")).to_have_text(["@bob", "alice (you)"])
    expect(page.locator("#topic-edit")).to_be_hidden()  # +t, and alice is no operator
    expect(page.locator("#modes-open")).to_be_hidden()
    room_entry(page, "#lobby").click()
    bob.send("KICK #dev alice :behave")
    entry = room_entry(page, "#dev")
    expect(entry).to_have_class(re.compile(r"\bparted\b"))
    expect(entry.locator(".unread.mention")).to_have_count(1)
    entry.click()
    sees(browser_page, "you were kicked by bob (behave)")
    expect(page.locator("#room-note")).to_have_text("you were kicked by bob (behave)")
    expect(page.locator("#user-list .member")).to_have_count(0)
    page.get_by_role("button", name="Join #dev again").click()  # a kick is not a ban
    expect(page.locator("#user-list .member")).to_have_text(["@bob", "alice (you)"])
    expect(entry).not_to_have_class(re.compile(r"\bparted\b"))
    bob.send("MODE #dev +b alice!*@*")  # the server puts her out with it
    expect(entry).to_have_class(re.compile(r"\bparted\b"))
    page.get_by_role("button", name="Join #dev again").click()
    sees(browser_page, "Cannot join channel (+b)")
    expect(page.locator("#room-note")).to_have_text(re.compile(r"Cannot join channel \(\+b\)"))
    assert browser_page.errors == []
