"""Where the client's input comes from and its output goes, and how it ends.

SHELL.  ``TerminalFront`` (stdin and stdout are a terminal) edits lines with
prompt_toolkit in a real OS thread from gevent's thread pool, because
prompt_toolkit stops responding when threads are monkey-patched (nothing here
patches); ``patch_stdout`` redraws the prompt and the half-typed text below
every line printed.  ``PipeFront`` (anything else) reads stdin cooperatively,
a line at a time.  Both offer ``start``, ``stop``, ``show``, ``set_prompt`` and
``read_line``; the client's main greenlet is their only caller.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import time
from typing import Any

from gevent import socket as gsocket
from gevent.threadpool import ThreadPool

__all__ = ["INTERRUPT", "PipeFront", "Stop", "TerminalFront"]

EXIT_OK = 0
EXIT_ERROR = 1  # unreachable, or the connection was lost
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_REFUSED = 3  # --nick was refused
EXIT_PASSWORD = 4  # the server refused the password, or wants one we lack
EXIT_SIGINT = 130  # 128 + SIGINT, as shells report it
EXIT_SIGTERM = 143

#: Most bytes one read of stdin takes.
RECV_BYTES = 65536

INTERRUPT = object()  # what the terminal front returns for Ctrl-C


class Stop(BaseException):
    """Ends the client: exit ``code``, and ``message`` (if any) on stderr.

    A ``BaseException`` so that it can be thrown into the main greenlet from a
    signal handler wherever it is waiting, and passes any ``except Exception``.
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class PipeFront:
    """Input from a non-terminal stdin, read cooperatively; output to stdout."""

    interactive = False

    def __init__(self) -> None:
        self._fd = sys.stdin.fileno()
        # Regular files are always readable; waiting on them is pointless.
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self._buf = b""
        self._eof = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def show(self, text: str) -> None:
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # Nobody reads our output any more (``| head``): leave quietly.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)
            raise Stop(EXIT_ERROR) from None

    def set_prompt(self, text: str) -> None:
        pass

    def read_line(self) -> Any:
        """The next input line (``str``), or None at end of input; yields meanwhile."""
        while b"\n" not in self._buf and not self._eof:
            if not self._regular:
                gsocket.wait_read(self._fd)
            data = os.read(self._fd, RECV_BYTES)
            self._buf += data
            self._eof = not data
        if b"\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n", 1)
        elif self._buf:
            raw, self._buf = self._buf, b""  # a last line without a newline
        else:
            return None
        # surrogateescape: the bytes typed are the bytes sent, valid UTF-8 or not.
        return raw.removesuffix(b"\r").decode("utf-8", "surrogateescape")


class TerminalFront:
    """prompt_toolkit line editing in a real OS thread; output via ``patch_stdout``."""

    interactive = True

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        self.message = ""  # the prompt; read by prompt_toolkit's thread
        self._session: Any = PromptSession(history=InMemoryHistory())
        self._asking: Any = self._session  # the session prompting now
        self._pool = ThreadPool(1)
        self._pending: Any = None
        self._stopping = False
        self._patch: Any = None
        self._saved_tty: Any = None

    def start(self) -> None:
        import termios

        from prompt_toolkit.patch_stdout import patch_stdout

        try:
            self._saved_tty = termios.tcgetattr(sys.stdin.fileno())
        except termios.error:
            self._saved_tty = None
        self._patch = patch_stdout(raw=True)  # raw: keep our own colour codes
        self._patch.__enter__()

    def stop(self) -> None:
        """End any running prompt, restore stdout and the terminal's modes."""
        self._stopping = True
        pending = self._pending
        app = self._asking.app
        deadline = time.monotonic() + 2.0
        while pending is not None and not pending.ready() and time.monotonic() < deadline:
            if app.is_running and app.loop is not None:
                app.loop.call_soon_threadsafe(functools.partial(_exit_app, app))
            pending.wait(0.05)
        if self._patch is not None:
            self._patch.__exit__(None, None, None)
            self._patch = None
        if self._saved_tty is not None:
            import termios

            try:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved_tty)
            except termios.error:
                pass
        self._pool.kill()

    def show(self, text: str) -> None:
        print(text, flush=True)  # sys.stdout is patch_stdout's thread-safe proxy

    def set_prompt(self, text: str) -> None:
        self.message = text
        self._session.app.invalidate()  # thread-safe; does nothing between prompts

    def read_line(self) -> Any:
        """The next line typed; None for Ctrl-D, INTERRUPT for Ctrl-C."""
        return self._ask(self._session, lambda: self.message)

    def read_secret(self, prompt: str) -> Any:
        """A line typed without echo (shown as ``*``), as ``read_line`` otherwise.

        A session of its own, thrown away after: the secret never enters the
        history that Up and Ctrl-R recall.  Only while ``read_line`` is idle.
        """
        from prompt_toolkit import PromptSession

        return self._ask(PromptSession(is_password=True), prompt)

    def _ask(self, session: Any, message: Any) -> Any:
        self._asking = session
        self._pending = self._pool.spawn(self._prompt, session, message)
        return self._pending.get()

    def _prompt(self, session: Any, message: Any) -> Any:  # runs in the pool's OS thread
        if self._stopping:
            return None
        try:
            return session.prompt(message)
        except EOFError:
            return None
        except KeyboardInterrupt:
            return INTERRUPT


def _exit_app(app: Any) -> None:
    try:
        app.exit(exception=EOFError)
    except Exception:
        pass  # already exiting with a result
