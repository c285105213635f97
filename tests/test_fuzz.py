"""Fuzzing: hypothesis over the pure layer, random bytes over real sockets.

The socket test runs the server in a subprocess so that its memory can be
read from /proc and its CPU is not the test's.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket as stdsocket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent import socket
from gevent.event import Event
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gevent_chat.core import commands
from gevent_chat.core import effects as effects_
from gevent_chat.core.errors import ClientError
from gevent_chat.core.gate import Gate
from gevent_chat.core.limits import ConnectionLimits
from gevent_chat.core.lines import render as render_line
from gevent_chat.core.protocol import LineBuffer
from gevent_chat.core.registry import Registry
from tests.helpers import ChatClient, ServerProcess, wait_until

# -- the pure layer ---------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # any control but the line feed


def _oracle(data: bytes, limit: int) -> list[bytes | None]:
    """What framing must give for ``data`` then EOF: the spec written the slow way."""
    *lines, last = data.split(b"\n")
    out: list[bytes | None] = []
    for line in [*lines, last]:
        line = line[:-1] if line.endswith(b"\r") else line
        out.append(None if len(line) > limit else line)
    if not last or (out[-1] is None and len(last) <= limit + 1):
        out.pop()  # no last line; or an overlong one not yet reported when the stream ended
    return out


@given(
    data=st.binary(max_size=3000) | st.builds(lambda n: b"a" * n + b"\r\n", st.integers(0, 5000)),
    cuts=st.lists(st.integers(0, 3000), max_size=20),
    limit=st.integers(1, 64),
)
def test_framing_matches_the_oracle_and_holds_at_most_the_limit(
    data: bytes, cuts: list[int], limit: int
) -> None:
    """A failure means lines depend on chunking, or a partial line grows past the limit."""
    buf = LineBuffer(limit)
    got: list[bytes | None] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        got.extend(buf.feed(data[start:cut]))
        start = cut
        assert len(buf._buf) <= limit + 1
    last = buf.close()
    if last is not None:
        got.append(last)
    expected = _oracle(data, limit)
    # An overlong unterminated line is reported at once, whatever comes after it.
    assert [x for x in got if x is not None] == [x for x in expected if x is not None]
    assert all(x is None or len(x) <= limit for x in got)


@given(st.lists(st.binary(max_size=100), max_size=60), st.integers(0, 10))
def test_gate_never_raises_and_closes_at_most_once(lines: list[bytes], max_lines: int) -> None:
    gate = Gate(password="pw", max_lines=max_lines)
    verdicts = [gate.check(line) for line in lines]
    closes = [i for i, v in enumerate(verdicts) if v.close is not None]
    assert not closes or all(v.close is not None for v in verdicts[closes[0] :])


class LimitsMachine(RuleBasedStateMachine):
    """ConnectionLimits against a plain model, under any order of admits and releases."""

    def __init__(self) -> None:
        super().__init__()
        self.limits = ConnectionLimits(max_clients=6, max_per_ip=2)
        self.held: list[str] = []

    @rule(ip=st.sampled_from(["a", "b", "c", "d"]))
    def admit(self, ip: str) -> None:
        refusal = self.limits.admit(ip)
        if len(self.held) >= 6:
            assert refusal == "server_full"
        elif self.held.count(ip) >= 2:
            assert refusal == "per_ip"
        else:
            assert refusal is None
            self.held.append(ip)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if self.held:
            ip = data.draw(st.sampled_from(self.held))
            self.held.remove(ip)
            self.limits.release(ip)

    @invariant()
    def counts_agree(self) -> None:
        assert self.limits.total == len(self.held)
        for ip in "abcd":
            assert self.limits.count(ip) == self.held.count(ip)


TestLimitsMachine = LimitsMachine.TestCase
TestLimitsMachine.settings = settings(max_examples=50, stateful_step_count=40)

_WORDS = st.sampled_from(
    ["alice", "bob", "carol", "lobby", "dev", "Alice", "x" * 40, "-bad", "é", "a\x1b[2J"]
)
_COMMAND = st.builds(
    lambda name, args: "/" + name + "".join(" " + a for a in args),
    st.sampled_from(
        ["nick", "join", "msg", "me", "who", "rooms", "help", "ping", "quit", "NICK", "nope", ""]
    ),
    st.lists(_WORDS | st.text(max_size=20), max_size=4),
)


class _Member:
    """What commands need of a connection: its nick."""

    def __init__(self, nick: str) -> None:
        self.nick = nick


class CommandsMachine(RuleBasedStateMachine):
    """Random slash commands from three users keep the registry consistent.

    Effects are applied as the connection applies them (``Renamed`` and
    ``Moved`` change the caller's nick and room).  A failure means a
    command raised, relayed a control character to someone else, or broke
    the registry.  (Replies to the caller may quote what the caller typed.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.registry: Registry[_Member] = Registry(history_size=5)
        self.rooms: dict[_Member, Any] = {}
        for nick in ("alice", "bob", "carol"):
            member = _Member(nick)
            self.rooms[member] = self.registry.add(nick, member)

    @rule(who=st.integers(0, 2), line=_COMMAND)
    def command(self, who: int, line: str) -> None:
        member = list(self.rooms)[who]
        ctx = commands.Context(member.nick, member, self.rooms[member], self.registry)
        try:
            effects = commands.run(line, ctx)
        except ClientError:
            pytest.fail("a ClientError escaped commands.run")
        for effect in effects:
            if isinstance(effect, effects_.Renamed):
                member.nick = effect.nick
            elif isinstance(effect, effects_.Moved):
                self.rooms[member] = effect.room
            elif isinstance(effect, effects_.ToRoom | effects_.ToShared | effects_.ToUser):
                data = render_line(effect.event)
                assert not _CONTROL.search(data.decode("utf-8", "replace"))
                assert data.endswith(b"\n")
            elif isinstance(effect, effects_.Send):
                assert effect.member in (None, member), "raw bytes to someone else"

    @invariant()
    def registry_matches_the_users(self) -> None:
        assert len(self.registry) == 3
        for member, room in self.rooms.items():
            assert self.registry.get(member.nick) is member
            assert self.registry.room_of(member.nick) is room
            assert member in room.members
        for room in self.registry.rooms():
            assert all(m in self.rooms for m in room.members)


TestCommandsMachine = CommandsMachine.TestCase
TestCommandsMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# -- random bytes over real sockets -----------------------------------------------------

FUZZERS = 20
GOOD_LINES = 200
LINE_LIMIT = 2048


def _rss_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    assert match is not None, status
    return int(match.group(1))


def _junk(rng: random.Random) -> bytes:
    """One burst from a hostile or broken client."""
    kind = rng.randrange(6)
    if kind == 0:  # random bytes, no newline at all
        return rng.randbytes(rng.randrange(1, 4000)).replace(b"\n", b"")
    if kind == 1:  # one huge line
        return b"z" * rng.randrange(LINE_LIMIT, 3_000_000) + b"\n"
    if kind == 2:  # invalid UTF-8
        return (
            b"".join(rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80abc"]) for _ in range(50))
            + b"\n"
        )
    if kind == 3:  # terminal escapes
        return b"\x1b[2J\x1b]0;pwned\x07\x1b[31mred\x9b1m\x1bc\n"
    if kind == 4:  # many tiny lines, CR and LF mixed
        return b"".join(rng.choice([b"x\n", b"\r\n", b"\n", b"y\r\n", b" \n"]) for _ in range(200))
    return rng.randbytes(rng.randrange(1, 2000))  # anything at all


def _fuzzer(addr: tuple[str, int], seed: int, stop: Event) -> int:
    """Connect, maybe register, send junk, end in a random way; repeat until ``stop``."""
    rng = random.Random(seed)
    rounds = 0
    while not stop.is_set():
        rounds += 1
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.connect(addr)
            if rng.random() < 0.5:
                sock.sendall(f"fz{seed}r{rounds}\n".encode())
            for _ in range(rng.randrange(1, 6)):
                sock.sendall(_junk(rng))
            ending = rng.randrange(3)
            if ending == 0:  # half-close: the server still answers, then closes
                sock.shutdown(stdsocket.SHUT_WR)
                while sock.recv(65536):
                    pass
            elif ending == 1:  # reset
                sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # cut by the server (too slow, too many lines): fine
        finally:
            sock.close()
    return rounds


CLOSED = "<<connection closed>>"


def _reader(client: ChatClient, got: list[str], stop: Event) -> None:
    """Collect lines until ``stop``; a closed connection is recorded, not raised."""
    while not stop.is_set():
        try:
            got.append(client.read_line(timeout=20))
        except AssertionError:
            got.append(CLOSED)
            return


@pytest.mark.timeout(40)  # a subprocess server under 20 fuzzing clients for a few seconds
def test_random_bytes_from_many_clients_lose_nothing_and_keep_memory_flat(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    # Registered fuzzers relay junk to the good users, whose readers share this
    # process's CPU with the fuzzers: a deep outbox keeps a busy machine from
    # turning them into slow consumers, which is not what this test is about.
    args = ("--max-line-bytes", str(LINE_LIMIT), "--rate-limit", "200", "--rate-burst", "200")
    args += ("--outbox-size", "20000")
    srv = spawn_server(*args)
    addr = srv.wait_listening()
    with contextlib.ExitStack() as closing:
        alice, bob = ChatClient(addr, timeout=20), ChatClient(addr, timeout=20)
        closing.callback(alice.close)
        closing.callback(bob.close)
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        baseline = _rss_kib(srv.proc.pid, "VmRSS")
        stop, done = Event(), Event()
        heard: dict[str, list[str]] = {"alice": [], "bob": []}
        readers = [gevent.spawn(_reader, c, heard[n], done) for n, c in (("alice", alice), ("bob", bob))]
        fuzzers = [gevent.spawn(_fuzzer, addr, seed, stop) for seed in range(FUZZERS)]
        try:
            start = time.monotonic()
            for i in range(GOOD_LINES):
                alice.send(f"from alice {i}")
                bob.send(f"from bob {i}")
                gevent.sleep(0.01)
            gevent.sleep(max(0.0, 3.0 - (time.monotonic() - start)))  # let the fuzzers run 3 s at least

            def both_heard_all() -> bool:
                a = [x for x in heard["alice"] if x.startswith("bob: ")]
                b = [x for x in heard["bob"] if x.startswith("alice: ")]
                return len(a) >= GOOD_LINES and len(b) >= GOOD_LINES

            wait_until(
                lambda: both_heard_all() or CLOSED in heard["alice"] + heard["bob"],
                timeout=15,
                what="every good line",
            )
        finally:
            stop.set()
            rounds = sum(g.get(timeout=10) for g in fuzzers)
            done.set()
            gevent.killall(readers)
        closed = [n for n in ("alice", "bob") if CLOSED in heard[n]]
        assert not closed, f"{closed} lost the connection; server log ends: {srv.log_text()[-2000:]}"
        assert [x for x in heard["alice"] if x.startswith("bob: ")] == [
            f"bob: from bob {i}" for i in range(GOOD_LINES)
        ]
        assert [x for x in heard["bob"] if x.startswith("alice: ")] == [
            f"alice: from alice {i}" for i in range(GOOD_LINES)
        ]
        # Fuzzers that stop reading may be cut as too slow; the good users never are.
        assert "*** disconnected: too slow" not in heard["alice"] + heard["bob"]
        assert not any(
            x.startswith(("*** alice left", "*** bob left")) for x in heard["alice"] + heard["bob"]
        )
        assert not any("\x1b" in x or "\x07" in x for x in heard["alice"] + heard["bob"])
        peak = _rss_kib(srv.proc.pid, "VmHWM")
        assert rounds > FUZZERS, "the fuzzers hardly ran"
        # Measured: about 3.5 MiB above a 30 MiB baseline.  A server that kept whole
        # lines (20 clients sending lines of up to 3 MB) would pass 24 MiB at once.
        assert peak - baseline < 24 * 1024, f"server memory grew from {baseline} to {peak} KiB"
        carol = ChatClient(addr)
        closing.callback(carol.close)
        assert carol.register("carol").endswith("3 users online")  # every fuzzer is gone
