"""End-to-end: every numbered point of the protocol, over real sockets.

Most tests run the server in-process on an ephemeral port (``make_server``,
``connect``); signals, the command line, logging and memory need a real child
process (``spawn_server``).  Each test names the protocol point it holds.
"""

from __future__ import annotations

import logging
import re
import signal
import socket as stdsocket
import time
from collections.abc import Callable, Iterator
from typing import cast

import gevent
import pytest

from gevent_chat.core.config import parse_args
from gevent_chat.server import ChatServer
from tests.helpers import ChatClient, ServerProcess, never_reading_client, wait_until

Connect = Callable[..., ChatClient]


def read_raw_line(client: ChatClient, timeout: float = 5.0) -> bytes:
    """The next line exactly as sent (no decoding), without its ``\\n``."""
    deadline = time.monotonic() + timeout
    while b"\n" not in client.buf:
        if not client._fill(deadline):
            raise AssertionError(f"connection closed; partial: {client.buf!r}")
    raw, client.buf = client.buf.split(b"\n", 1)
    return raw


def pair(connect: Connect) -> tuple[ChatClient, ChatClient]:
    """alice and bob registered; alice has seen bob join."""
    alice = connect("alice")
    bob = connect("bob")
    alice.expect(r"^\*\*\* bob joined$")
    return alice, bob


def collect(
    client: ChatClient, prefix: str | tuple[str, ...], count: int, timeout: float = 20.0
) -> list[str]:
    """Read until ``count`` lines starting with ``prefix`` arrived; return those lines."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        line = client.read_line(max(0.001, deadline - time.monotonic()))
        assert not line.startswith("*** disconnected"), f"reader was cut: {line!r}"
        if line.startswith(prefix):
            got.append(line)
    return got


# -- 1. command line and listening address ------------------------------------------


def test_default_listen_address_is_all_interfaces_port_8000() -> None:
    config = parse_args([])
    assert (config.host, config.port) == ("0.0.0.0", 8000)


def test_port_zero_logs_the_real_address(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server()
    line = next(ln for ln in server.log if "listening on" in ln)
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)$", line)
    assert m is not None, line
    port = int(m.group(1))
    assert port != 0
    client = ChatClient(("127.0.0.1", port))
    try:
        client.expect_prompt()
    finally:
        client.close()


def _has_ipv6_loopback() -> bool:
    if not stdsocket.has_ipv6:
        return False
    try:
        with stdsocket.socket(stdsocket.AF_INET6, stdsocket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_host_listens_and_serves(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server(host="::1")
    assert any(re.search(r"listening on \[::1\]:\d+$", ln) for ln in server.log), server.log
    host, port = server.wait_listening()
    assert host == "::1"
    client = ChatClient((host, port))
    try:
        assert client.register("six").startswith("*** Welcome, six!")
    finally:
        client.close()


# -- 2, 3. prompt and nickname rules ------------------------------------------------


def test_connect_gets_prompt_with_nickname(connect: Connect) -> None:
    client = connect()
    client.expect_prompt()


@pytest.mark.parametrize(
    "bad",
    [b"\x1b[31mbob", b"bob\x1b[0m", b"a" * 33, b"-bob", b".bob", b"bo b", b"bo\x07b", b""],
    ids=["csi-prefix", "csi-suffix", "33-chars", "leading-dash", "leading-dot", "space", "bell", "empty"],
)
def test_invalid_nick_is_refused_and_prompt_repeats(connect: Connect, bad: bytes) -> None:
    client = connect()
    client.expect_prompt()
    client.send(bad)
    line = client.read_line()
    assert line.startswith("*** "), line
    assert "invalid" in line, line
    client.expect_prompt()
    # Refused, not cleaned: the same connection can still pick a proper nick.
    client.send("bob")
    assert client.expect(r"^\*\*\* Welcome").string.startswith("*** Welcome, bob!")


def test_overlong_nickname_line_is_refused_and_prompt_repeats(connect: Connect) -> None:
    client = connect()
    client.expect_prompt()
    client.send(b"n" * 5000)
    assert client.read_line() == "*** error: line too long (limit 4096 bytes)"
    client.expect_prompt()
    client.send("bob")
    assert client.expect(r"^\*\*\* Welcome").string.startswith("*** Welcome, bob!")


def test_nick_with_escape_is_not_registered_as_cleaned_nick(connect: Connect) -> None:
    first = connect()
    first.expect_prompt()
    first.send(b"\x1b[31mbob")
    first.expect("invalid")
    # Had the nick been cleaned into "bob", this would be taken.
    assert connect("bob").lines[-1].startswith("*** Welcome, bob!")


@pytest.mark.parametrize("other", ["alice", "ALICE", "Alice", "  alice  "])
def test_taken_nick_is_refused_case_insensitively(connect: Connect, other: str) -> None:
    connect("alice")
    client = connect()
    client.expect_prompt()
    client.send(other)
    line = client.read_line()
    assert line.startswith("*** "), line
    assert "taken" in line, line
    client.expect_prompt()


def test_unicode_nick_is_accepted(connect: Connect) -> None:
    assert connect("Zoë_1.x-y").lines[-1] == "*** Welcome, Zoë_1.x-y! 1 user online"


def test_unregistered_client_is_told_and_closed_after_timeout(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(register_timeout=0.3)
    client = ChatClient(server.address)
    try:
        client.expect_prompt()
        lines = client.read_until_closed(timeout=5)
    finally:
        client.close()
    assert any(ln.startswith("*** ") and "time" in ln for ln in lines), lines


def test_register_timeout_spares_registered_users(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(register_timeout=0.3)
    alice, late = ChatClient(server.address), ChatClient(server.address)
    try:
        alice.register("alice")
        late.expect_prompt()
        late.read_until_closed(timeout=5)  # late's timer fired, so alice's has long passed
        bob = ChatClient(server.address)
        try:
            bob.register("bob")
            alice.expect(r"^\*\*\* bob joined$")
            alice.send("still here")
            bob.expect(r"^alice: still here$")
        finally:
            bob.close()
    finally:
        alice.close()
        late.close()


# -- 4. welcome and joined ----------------------------------------------------------


def test_first_user_is_welcomed_with_count_of_one(connect: Connect) -> None:
    assert connect("alice").lines[-1] == "*** Welcome, alice! 1 user online"


def test_others_are_told_who_joined(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.expect(r"^\*\*\* bob joined$")
    assert bob.lines[-1] == "*** Welcome, bob! 2 users online"
    connect("carol")
    alice.expect(r"^\*\*\* carol joined$")
    bob.expect(r"^\*\*\* carol joined$")


# -- 5. broadcast, no echo, blank lines ---------------------------------------------


def test_chat_reaches_every_other_user_without_echo(connect: Connect) -> None:
    alice, bob = pair(connect)
    carol = connect("carol")
    alice.expect("carol joined")
    bob.expect("carol joined")
    alice.send("hello all")
    bob.expect(r"^alice: hello all$")
    carol.expect(r"^alice: hello all$")
    carol.send("marker")
    # alice's own line never came back: the next thing she sees is carol's.
    assert alice.read_line() == "carol: marker"


def test_blank_lines_are_ignored(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"\n   \n\r\n\t\n\x1b[0m\nafter blanks\n")
    assert bob.read_line() == "alice: after blanks"


# -- 6. framing ---------------------------------------------------------------------


def test_crlf_line_endings_are_accepted_and_output_ends_with_lf(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send("from telnet", end=b"\r\n")
    assert read_raw_line(bob) == b"alice: from telnet"


def test_crlf_works_for_the_nickname_too(connect: Connect) -> None:
    client = connect()
    client.expect_prompt()
    client.send("winuser", end=b"\r\n")
    assert client.expect("Welcome").string.startswith("*** Welcome, winuser!")


def test_line_sent_one_byte_at_a_time_arrives_whole(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
    for byte in b"dribbled slowly\r\n":
        alice.send_raw(bytes([byte]))
    assert read_raw_line(bob) == b"alice: dribbled slowly"


def test_hundred_lines_in_one_segment_all_arrive_in_order(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"".join(b"line %d\n" % i for i in range(100)))
    assert [bob.read_line() for _ in range(100)] == [f"alice: line {i}" for i in range(100)]


def test_nickname_and_first_lines_in_one_segment(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect()
    bob.expect_prompt()
    bob.send_raw(b"bob\r\nfirst\nsecond\r\n")
    alice.expect(r"^\*\*\* bob joined$")
    assert [alice.read_line(), alice.read_line()] == ["bob: first", "bob: second"]


def test_last_line_without_newline_is_delivered_on_close(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"bye")
    alice.close()
    bob.expect(r"^alice: bye$")
    bob.expect(r"^\*\*\* alice left$")


def test_last_line_without_newline_is_delivered_on_half_close(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send_raw(b"half closed")
    alice.sock.shutdown(stdsocket.SHUT_WR)  # as `nc -N` does at end of input
    bob.expect(r"^alice: half closed$")
    bob.expect(r"^\*\*\* alice left$")


# -- 7. decoding and sanitising -----------------------------------------------------


def test_invalid_utf8_becomes_replacement_character(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send(b"caf\xe9 \xff\xfe ok")
    assert read_raw_line(bob) == "alice: caf\ufffd \ufffd\ufffd ok".encode()


def test_valid_utf8_passes_unchanged(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send("naïve — 字 ✓")
    assert read_raw_line(bob) == "alice: naïve — 字 ✓".encode()


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        (b"\x1b[31mred\x1b[0m", b"red"),
        (b"\x1b[2J\x1b[Hcleared", b"cleared"),
        (b"\x1b]0;pwned title\x07after osc", b"after osc"),
        (b"\x1b]2;pwned\x1b\\after st", b"after st"),
        ("\u009b31mc1 csi".encode(), b"c1 csi"),
        ("a\u0085b\u009dtitle\u009cc".encode(), b"abc"),
        (b"nul\x00 bel\x07 del\x7f bs\x08", b"nul bel del bs"),
        (b"carriage\rreturn", b"carriagereturn"),
        (b"tab\there", b"tab here"),
    ],
    ids=["csi", "clear", "osc-bel", "osc-st", "c1-csi", "c1-controls", "c0-del", "bare-cr", "tab"],
)
def test_escapes_and_controls_are_stripped_before_relay(connect: Connect, sent: bytes, seen: bytes) -> None:
    alice, bob = pair(connect)
    alice.send(sent)
    raw = read_raw_line(bob)
    assert raw == b"alice: " + seen
    text = raw.decode()
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text), raw


@pytest.mark.parametrize(
    "sent",
    ["evil\u202etxt.exe", "\u2066hidden\u2069", "forged\u2028*** bob left", "in\u200bvisible"],
    ids=["rlo", "isolate", "line-separator", "zero-width-space"],
)
def test_bidi_and_invisible_controls_do_not_reach_others(connect: Connect, sent: str) -> None:
    alice, bob = pair(connect)
    alice.send(sent)
    text = read_raw_line(bob).decode()
    assert text.startswith("alice: ")
    assert not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\u200b")


def test_emoji_sequence_keeps_its_joiner(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send("\U0001f469\u200d\U0001f4bb")
    assert read_raw_line(bob).decode() == "alice: \U0001f469\u200d\U0001f4bb"


# -- 8. line limit ------------------------------------------------------------------


def test_overlong_line_is_refused_and_connection_carries_on(connect: Connect) -> None:
    alice, bob = pair(connect)
    alice.send(b"y" * 5000)
    assert alice.read_line() == "*** error: line too long (limit 4096 bytes)"
    alice.send("short again")
    assert bob.read_line() == "alice: short again"  # bob never saw any of the long line


def test_line_of_exactly_the_limit_is_relayed(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(max_line_bytes=32)
    alice, bob = ChatClient(server.address), ChatClient(server.address)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        alice.send(b"z" * 32, end=b"\r\n")  # the line ending does not count
        assert bob.read_line() == "alice: " + "z" * 32
        alice.send(b"z" * 33)
        assert alice.read_line() == "*** error: line too long (limit 32 bytes)"
        alice.send("next")
        assert bob.read_line() == "alice: next"
    finally:
        alice.close()
        bob.close()


def _vm_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


# Streams 100 MB through loopback; that takes a few seconds on a busy 2-core machine.
@pytest.mark.timeout(60)
def test_hundred_megabyte_line_does_not_raise_server_memory(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server()
    addr = server.wait_listening()
    alice, bob = ChatClient(addr, timeout=30), ChatClient(addr, timeout=30)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        peak_before = _vm_kb(server.pid, "VmHWM")
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            alice.send_raw(chunk)
        alice.send("\nafter the flood")
        assert alice.read_line(30) == "*** error: line too long (limit 4096 bytes)"
        assert bob.read_line(30) == "alice: after the flood"
        grown_kb = _vm_kb(server.pid, "VmHWM") - peak_before
        assert grown_kb < 20 * 1024, f"server peak RSS grew by {grown_kb} kB for one long line"
    finally:
        alice.close()
        bob.close()


# -- 9, 10. slow consumers, bursts, ordering ----------------------------------------


Spawn = Callable[..., "gevent.Greenlet[..., object]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """``gevent.spawn`` whose greenlets are killed after the test (before its sockets close)."""
    started: list[gevent.Greenlet[..., object]] = []

    def start(func: Callable[..., object], *args: object) -> gevent.Greenlet[..., object]:
        greenlet = gevent.spawn(func, *args)
        started.append(greenlet)
        return greenlet

    yield start
    gevent.killall(started, timeout=2)


def _sender(
    spawn: Spawn, client: ChatClient, tag: str, count: int, batch: int, pad: int = 0
) -> gevent.Greenlet[..., object]:
    filler = "." * pad

    def run() -> None:
        for start in range(0, count, batch):
            stop = min(count, start + batch)
            client.send_raw("".join(f"{tag} {i} {filler}\n" for i in range(start, stop)).encode())

    return spawn(run)


def _numbers(lines: list[str]) -> list[int]:
    return [int(ln.split()[2]) for ln in lines]


# Moves about 15 MB through three connections (the slow one must overflow a 4 MB
# kernel send buffer first); allow for a loaded machine.
@pytest.mark.timeout(40)
def test_slow_consumer_is_cut_while_others_lose_nothing(
    make_server: Callable[..., ChatServer], caplog: pytest.LogCaptureFixture, spawn: Spawn
) -> None:
    caplog.set_level(logging.INFO, logger="gevent_chat")
    server = make_server(outbox_size=100)
    alice, bob = ChatClient(server.address, timeout=20), ChatClient(server.address, timeout=20)
    slow = never_reading_client(server.address, "slow")
    try:
        alice.register("alice")
        bob.register("bob")
        wait_until(lambda: len(server.registry) == 3, what="slow to register")
        n = 3000
        senders = [_sender(spawn, alice, "a", n, 50, pad=1200), _sender(spawn, bob, "b", n, 50, pad=1200)]
        got_bob = spawn(collect, bob, "alice: a ", n, 30)
        got_alice = spawn(collect, alice, "bob: b ", n, 30)
        gevent.joinall([*senders, got_bob, got_alice], raise_error=True, timeout=35)
        assert _numbers(cast("list[str]", got_bob.get(block=False))) == list(range(n))
        assert _numbers(cast("list[str]", got_alice.get(block=False))) == list(range(n))
        for client in (alice, bob):
            if "*** slow left (too slow)" not in client.lines:
                client.expect(r"^\*\*\* slow left \(too slow\)$")
            assert not any(re.match(r"^\*\*\* (alice|bob) left", ln) for ln in client.lines)
        wait_until(lambda: len(server.registry) == 2, what="slow to leave the registry")
        assert "cut: outbox full" in caplog.text
    finally:
        alice.close()
        bob.close()
        slow.close()


def test_fast_sender_burst_reaches_a_reader_that_keeps_up(connect: Connect) -> None:
    alice, bob = pair(connect)
    n = 5000
    alice.send_raw("".join(f"burst {i} xxxxxxxxxxxxxxxxxxxxxxxx\n" for i in range(n)).encode())
    got = collect(bob, "alice: burst ", n)
    assert [int(ln.split()[2]) for ln in got] == list(range(n))
    # bob was never cut: he can still talk, and alice saw no leave notice.
    bob.send("still connected")
    assert alice.read_line() == "bob: still connected"


def test_bursts_bigger_than_the_outbox_do_not_cut_readers(
    make_server: Callable[..., ChatServer], spawn: Spawn
) -> None:
    """One received chunk may hold more short lines than an outbox; readers must survive it."""
    server = make_server(outbox_size=100)
    names = ["alice", "carol"]
    clients = [ChatClient(server.address) for _ in names]
    bob = ChatClient(server.address)
    try:
        for client, name in zip(clients, names, strict=True):
            client.register(name)
        bob.register("bob")
        n = 2000
        senders = [_sender(spawn, c, name, n, n) for c, name in zip(clients, names, strict=True)]
        peers = zip(clients, reversed(names), strict=True)
        readers = [spawn(collect, c, f"{other}: ", n, 15) for c, other in peers]
        seen = collect(bob, ("alice: ", "carol: "), 2 * n, 15)
        gevent.joinall([*senders, *readers], raise_error=True, timeout=15)
        for name in names:
            assert _numbers([ln for ln in seen if ln.startswith(f"{name}: ")]) == list(range(n))
        assert len(server.registry) == 3
    finally:
        for client in (*clients, bob):
            client.close()


# Four clients each send and receive 1500 lines at once; allow for a loaded machine.
@pytest.mark.timeout(30)
def test_each_senders_lines_arrive_in_order_with_concurrent_senders(connect: Connect, spawn: Spawn) -> None:
    names = ["s0", "s1", "s2", "s3"]
    clients = [connect(name) for name in names]
    observer = connect("observer")
    for client in clients:
        client.expect(r"^\*\*\* observer joined$")
    n = 500
    batches = [1, 7, 50, 500]  # lines per sendall, from dribble to one burst
    senders = [_sender(spawn, c, name, n, b) for c, name, b in zip(clients, names, batches, strict=True)]
    readers = [spawn(collect, c, "s", n * (len(names) - 1), 20) for c in clients]
    seen = collect(observer, "s", n * len(names), 20)
    gevent.joinall([*senders, *readers], raise_error=True, timeout=25)
    for name in names:
        mine = [ln for ln in seen if ln.startswith(f"{name}: ")]
        assert _numbers(mine) == list(range(n)), name
    for name, reader in zip(names, readers, strict=True):
        others = cast("list[str]", reader.get(block=False))
        assert not any(ln.startswith(f"{name}: ") for ln in others), "echo"
        for other in names:
            if other != name:
                assert _numbers([ln for ln in others if ln.startswith(f"{other}: ")]) == list(range(n))


# -- 11. leaving --------------------------------------------------------------------


def test_abrupt_reset_is_announced_as_left(connect: Connect) -> None:
    alice, bob = pair(connect)
    bob.reset()
    alice.expect(r"^\*\*\* bob left$")


def test_registry_and_connections_empty_after_everyone_leaves(server: ChatServer, connect: Connect) -> None:
    alice, bob = pair(connect)
    carol = connect("carol")
    lurker = connect()
    lurker.expect_prompt()
    wait_until(lambda: len(server.connections) == 4, what="4 connections")
    alice.close()
    bob.reset()
    carol.send_raw(b"parting words")
    carol.sock.shutdown(stdsocket.SHUT_WR)
    lurker.reset()
    wait_until(
        lambda: len(server.registry) == 0 and not server.connections and not server.registry.rooms(),
        what="registry and connections to empty",
    )


# -- 12. graceful shutdown ----------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_tells_everyone_and_exits_zero(
    spawn_server: Callable[..., ServerProcess], signum: signal.Signals
) -> None:
    server = spawn_server("--shutdown-timeout", "2")
    addr = server.wait_listening()
    alice, bob = ChatClient(addr), ChatClient(addr)
    lurker = ChatClient(addr)
    try:
        alice.register("alice")
        bob.register("bob")
        lurker.expect_prompt()
        server.proc.send_signal(signum)
        for client in (alice, bob):
            client.expect(r"^\*\*\* server shutting down$")
            client.read_until_closed()
        assert "*** server shutting down" in lurker.read_until_closed()
        assert server.wait(timeout=8) == 0
    finally:
        for client in (alice, bob, lurker):
            client.close()


# Pushes 8 MB at a client that never reads, then waits for a bounded shutdown.
@pytest.mark.timeout(30)
def test_shutdown_is_bounded_with_a_client_that_never_reads(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server("--shutdown-timeout", "1", "--outbox-size", "100000")
    addr = server.wait_listening()
    slow = never_reading_client(addr, "slow")
    alice = ChatClient(addr)
    try:
        alice.register("alice")
        line = b"x" * 1000 + b"\n"
        for _ in range(8):  # 8 MB: more than the kernel buffers hold for slow
            alice.send_raw(line * 1000)
        alice.send("done")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        alice.expect(r"^\*\*\* server shutting down$")
        assert server.wait(timeout=15) == 0
        # One second to flush, then at most a second more to close everything.
        assert time.monotonic() - started < 8, "shutdown was not bounded by --shutdown-timeout"
    finally:
        alice.close()
        slow.close()


# -- 13. logging --------------------------------------------------------------------


@pytest.mark.parametrize("level", ["info", "debug"])
def test_log_has_connects_and_disconnects_but_no_message_text(
    spawn_server: Callable[..., ServerProcess], level: str
) -> None:
    server = spawn_server("--log-level", level)
    addr = server.wait_listening()
    alice, bob = ChatClient(addr), ChatClient(addr)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("bob joined")
        host, port = alice.sock.getsockname()[:2]
        alice_peer = f"{host}:{port}"
        alice.send("secret-words-0451")
        alice.send_raw(b"unterminated-secret-9876")
        bob.expect("secret-words-0451")
        alice.close()
        bob.expect("alice left")
        wait_until(lambda: "disconnected" in server.log_text(), what="disconnect log line")
    finally:
        alice.close()
        bob.close()
    log = server.log_text()
    assert re.search(rf"connect from {re.escape(alice_peer)}\b", log), log
    assert re.search(rf"alice .*{re.escape(alice_peer)}.*disconnected", log), log
    assert "secret-words-0451" not in log
    assert "unterminated-secret-9876" not in log
