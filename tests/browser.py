"""Browser tests' harness: Debian's Chromium, driven by Playwright's sync API.

Use it as a pytest plugin (``pytest_plugins = ["tests.browser"]``, from a
conftest or a test module; a module imports its types only under
``TYPE_CHECKING``, since the plugin is loaded after the module body runs) and
take the ``browser_page`` fixture, or ``chromium`` for pages of your own.

How it lives with gevent in one unpatched process: Playwright's sync API runs
an asyncio loop in a greenlet of its own and, for every call, blocks its
thread in that loop until the driver answers.  Called from the test's thread,
that would block the gevent hub too, so a server running in-process would
never answer the browser (``page.goto`` simply times out; tried).  So every
Playwright call runs on one dedicated native thread, a gevent
``ThreadPool(1)`` (Playwright objects must stay on the thread that made them),
and the test's greenlet waits for each call cooperatively: the hub, and the
server under test, keep running meanwhile.  ``Remote`` hides the hop:
``page.goto(url)`` in a test is ``pool.spawn(real_page.goto, url).get()``.

Rules that follow from it: a callback given to Playwright (``page.on(...)``)
runs on the browser thread, so it may only append to a list (the GIL makes
that safe), never touch a gevent object.  And events such as console messages
are only collected while some Playwright call is under way, as always with the
sync API.

Without Chromium (or Playwright) the tests are skipped with the reason; with
``GEVENT_CHAT_REQUIRE_ALL=1`` they fail instead.
Chromium needs ``chromium`` and, for Playwright's driver, ``libatomic1``
(Debian packages).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gevent.threadpool import ThreadPool

__all__ = [
    "CHROMIUM_ARGS",
    "SCREENSHOT",
    "BrowserPage",
    "Chromium",
    "Remote",
    "browser_page",
    "browser_pages",
    "chromium",
    "chromium_path",
    "save_screenshot",
]

#: Flags for a headless Chromium that talks to nothing but the page under test.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # runs as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Where the README's screenshot lives.
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"

#: Longest a single Playwright call may wait (ms), well inside a test's timeout.
CALL_TIMEOUT_MS = 5000


def chromium_path() -> str | None:
    """The Chromium binary, or None."""
    found = shutil.which("chromium")
    if found is None and os.access("/usr/bin/chromium", os.X_OK):
        found = "/usr/bin/chromium"
    return found


def _missing(reason: str) -> None:
    """Skip, or fail when every test is required to run."""
    if os.environ.get("GEVENT_CHAT_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (GEVENT_CHAT_REQUIRE_ALL=1)")
    pytest.skip(reason)


def _is_playwright(value: object) -> bool:
    return type(value).__module__.startswith("playwright.")


class Remote:
    """A Playwright object whose every use runs on the browser thread.

    Attributes and calls go through ``pool``; results that are Playwright
    objects come back wrapped again, anything else (text, numbers, lists of
    them) as it is.  ``Remote`` arguments are unwrapped on the way in.
    """

    __slots__ = ("_pool", "_target")

    def __init__(self, pool: ThreadPool, target: Any) -> None:
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_target", target)

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        if _is_playwright(value) or callable(value):
            return Remote(self._pool, value)
        return value

    def __getattr__(self, name: str) -> Any:
        return self._wrap(self._pool.spawn(getattr, self._target, name).get())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return self._wrap(self._pool.spawn(self._target, *args, **kwargs).get())

    def __repr__(self) -> str:
        return f"Remote({self._target!r})"


def _unwrap(value: Any) -> Any:
    return value._target if isinstance(value, Remote) else value


class Chromium:
    """One Playwright driver and one Chromium, on their own thread."""

    def __init__(self, executable: str) -> None:
        self.pool = ThreadPool(1)
        try:
            launched = self.pool.spawn(self._launch, executable).get()
            assert launched is not None
            self._playwright, self._browser = launched
        except BaseException:
            self.pool.kill()
            raise

    @staticmethod
    def _launch(executable: str) -> tuple[Any, Any]:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        except BaseException:
            playwright.stop()
            raise
        return playwright, browser

    def new_context(self, **options: Any) -> Remote:
        """A fresh profile (no storage shared between tests)."""

        def make() -> Any:
            context = self._browser.new_context(**options)
            context.set_default_timeout(CALL_TIMEOUT_MS)
            return context

        return Remote(self.pool, self.pool.spawn(make).get())

    def expect(self, target: Remote, **options: Any) -> Remote:
        """Playwright's ``expect(locator_or_page)``, waiting on the browser thread."""
        from playwright.sync_api import expect

        actual = _unwrap(target)
        return Remote(self.pool, self.pool.spawn(lambda: expect(actual, **options)).get())

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the browser thread (for Playwright objects unwrapped)."""
        return self.pool.spawn(fn, *(_unwrap(a) for a in args)).get()

    def close(self) -> None:
        """Close Chromium and stop the driver (both child processes end), then the thread."""
        try:
            self.pool.spawn(self._browser.close).get()
        finally:
            try:
                self.pool.spawn(self._playwright.stop).get()
            finally:
                self.pool.kill()


@dataclasses.dataclass
class BrowserPage:
    """A page in a fresh context, with what it reported."""

    browser: Chromium
    context: Remote
    page: Remote
    #: Console errors (CSP violations among them) and uncaught exceptions.
    errors: list[str] = dataclasses.field(default_factory=list)
    #: alert/confirm/prompt texts: a page that was made to run script shows one.
    dialogs: list[str] = dataclasses.field(default_factory=list)

    def expect(self, target: Remote, **options: Any) -> Remote:
        return self.browser.expect(target, **options)

    def screenshot(self, path: Path = SCREENSHOT) -> Path:
        """``save_screenshot`` of this page."""
        return save_screenshot(self.page, path)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """One Chromium for the whole run (launching takes about a second)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed")
    executable = chromium_path()
    if executable is None:
        _missing("Chromium is not installed (Debian: apt-get install chromium libatomic1)")
    assert executable is not None
    browser = Chromium(executable)
    try:
        yield browser
    finally:
        browser.close()


def open_page(chromium: Chromium, opened: list[Remote]) -> BrowserPage:
    """A new page in a fresh context whose console errors and dialogs are recorded."""
    # Light, whatever the desktop prefers: the README's screenshot is the light theme.
    context = chromium.new_context(viewport={"width": 900, "height": 640}, color_scheme="light")
    opened.append(context)
    page = context.new_page()
    seen = BrowserPage(chromium, context, page)

    def on_console(message: Any) -> None:  # runs on the browser thread
        if message.type == "error":
            seen.errors.append(f"console: {message.text}")

    def on_dialog(dialog: Any) -> None:  # runs on the browser thread
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.errors.append(f"pageerror: {exc}"))
    page.on("dialog", on_dialog)
    return seen


@pytest.fixture
def browser_page(chromium: Chromium) -> Iterator[BrowserPage]:
    """A new page whose console errors and dialogs are recorded."""
    opened: list[Remote] = []
    try:
        yield open_page(chromium, opened)
    finally:
        for context in opened:
            context.close()


@pytest.fixture
def browser_pages(chromium: Chromium) -> Iterator[Callable[[], BrowserPage]]:
    """Open more pages, each in a context of its own (one user each); all closed after."""
    opened: list[Remote] = []
    try:
        yield lambda: open_page(chromium, opened)
    finally:
        for context in opened:
            context.close()


def save_screenshot(page: Remote, path: Path = SCREENSHOT, width: int = 900, height: int = 560) -> Path:
    """Save what ``page`` shows, at a fixed size, as a PNG (the README's by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": height})
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path
