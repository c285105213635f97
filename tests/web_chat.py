"""What the browser-page tests share: servers with a web port, and the page's moves.

The page is an IRC client on ``/ws``; other users are raw TCP line clients
(as ``nc`` would be) and IRC clients (``tests.irc_client``), all in one chat.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gevent_chat.core.config import Config
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient
from tests.irc_client import IrcClient

if TYPE_CHECKING:  # the plugin is loaded by the test modules
    from tests.browser import BrowserPage

__all__ = [
    "Servers",
    "active_log",
    "login",
    "room_entry",
    "running_servers",
    "say",
    "sees",
    "url",
    "watch_close",
]


class Servers:
    """Chat servers with a web port (and an IRC port), all stopped after the test."""

    def __init__(self) -> None:
        self.running: list[ChatServer] = []
        self.clients: list[ChatClient | IrcClient] = []

    def start(self, web_port: int = 0, **overrides: Any) -> ChatServer:
        overrides.setdefault("rate_limit", 0)
        overrides.setdefault("irc_port", 0)
        server = ChatServer(Config(host="127.0.0.1", port=0, web_port=web_port, **overrides))
        server.start()
        self.running.append(server)
        return server

    def stop(self, server: ChatServer) -> None:
        self.running.remove(server)
        server.stop(timeout=1)

    def terminal(self, server: ChatServer, nick: str) -> ChatClient:
        """A raw TCP line user, registered (in the lobby)."""
        client = ChatClient(server.address)
        self.clients.append(client)
        client.register(nick)
        return client

    def irc(self, server: ChatServer, nick: str, *rooms: str) -> IrcClient:
        """An IRC user over TCP, registered with server-time, in ``rooms``."""
        client = IrcClient(server.irc_addresses[0])
        self.clients.append(client)
        client.register(nick, ("server-time", "multi-prefix"))
        for room in rooms:
            client.send(f"JOIN {room}")
            client.expect("366")
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.running:
            server.stop(timeout=1)


def running_servers() -> Iterator[Servers]:
    """The body of a test module's ``servers`` fixture: ``yield from running_servers()``."""
    started = Servers()
    try:
        yield started
    finally:
        started.close()


def url(server: ChatServer) -> str:
    return "http://{}:{}/".format(*server.web_address)


def login(browser: BrowserPage, server: ChatServer, nick: str) -> Any:
    """Open the page, join as ``nick``, wait until online in #lobby with the member list shown."""
    page = browser.page
    page.goto(url(server))
    page.fill("#nick", nick)
    page.click("#join")
    browser.expect(page.locator("#status")).to_have_text("online")
    browser.expect(page.locator("#me")).to_have_text(nick)
    browser.expect(page.locator("#room")).to_have_text("#lobby")
    browser.expect(page.locator("#user-list")).to_contain_text(nick)
    return page


def say(page: Any, line: str) -> None:
    page.fill("#input", line)
    page.press("#input", "Enter")


def active_log(page: Any) -> Any:
    """The log of the room on show."""
    return page.locator("#logs .log:not([hidden])")


def sees(browser: BrowserPage, text: str, room: str | None = None) -> None:
    """The log of ``room`` (the one on show if None) shows ``text`` as text."""
    page = browser.page
    log = active_log(page) if room is None else page.locator(f'#logs .log[data-room="{room}"]')
    browser.expect(log.locator("li", has_text=text).last).to_have_count(1)


def room_entry(page: Any, name: str) -> Any:
    """The room list's button for ``name`` (its accessible name starts with it)."""
    return page.locator(
        "#room-list button.room-entry",
        has=page.locator(".name", has_text=re.compile(rf"^{re.escape(name)}$")),
    )


def watch_close(page: Any) -> None:
    """Record how the page's current WebSocket closes (code, clean) in ``window.wsClosed``."""
    script = "e => { window.wsClosed = [e.code, e.wasClean]; }"
    page.evaluate(f"() => window.geventChat.state.ws.addEventListener('close', {script})")
