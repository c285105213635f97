"""irctest controller for gevent-chat's IRC port.

Used from an irctest checkout (github.com/progval/irctest), outside its tree:

    cd /work/irctest && PYTHONPATH=/path/to/gevent-chat/tests/irctest \
        GEVENT_CHAT_PYTHON=/work/venv/bin/python GEVENT_CHAT_ROOT=/path/to/gevent-chat \
        .venv/bin/python -m pytest --controller gevent_chat_controller \
        -m 'not services and not implementation-specific and not deprecated and not strict' \
        irctest/server_tests

It starts ``python -m gevent_chat.server`` with the name, operator and
password irctest expects; the line port is bound to a spare port nobody uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import ClassVar

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController

PYTHON = os.environ.get("GEVENT_CHAT_PYTHON", sys.executable)
ROOT = os.environ.get("GEVENT_CHAT_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


class GeventChatController(BaseServerController, DirectoryBasedController):
    software_name = "gevent-chat"
    supported_sasl_mechanisms: ClassVar[set[str]] = set()
    supports_sts = False

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None,
        websocket_hostname: str | None,
        websocket_port: int | None,
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if run_services:
            raise NotImplementedByController("services")
        assert self.proc is None
        self.port = port
        self.hostname = hostname
        self.create_config()
        assert self.directory
        hashed = subprocess.run(
            [PYTHON, "-m", "gevent_chat.server", "--hash-password"],
            input="operpassword\n",
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT},
        ).stdout.strip()
        with self.open_file("opers.txt") as fd:
            fd.write(f"operuser {hashed}\n")
        args = [
            PYTHON,
            "-m",
            "gevent_chat.server",
            "--host",
            hostname,
            "--port",
            "0",
            "--server-name",
            "My.Little.Server",
            "--opers-file",
            str(self.directory / "opers.txt"),
            "--rate-limit",
            "0",
            "--log-level",
            "warning",
        ]
        if ssl:
            self.gen_ssl()
            args += ["--certfile", str(self.pem_path), "--keyfile", str(self.key_path)]
            args += ["--irc-tls-port", str(port), "--irc-port", "0"]
        else:
            args += ["--irc-port", str(port)]
        env = dict(os.environ)
        if password is not None:
            env["GEVENT_CHAT_PASSWORD"] = password
        env["PYTHONPATH"] = ROOT
        self.proc = self.execute(args, env=env, cwd=ROOT)


def get_irctest_controller_class() -> type[GeventChatController]:
    return GeventChatController
