"""The load test's pure rules: line format, loss and order checks, nicks, addresses, steps.

Also the pure helpers of ``loadtest.compare`` (chatbench's output, medians,
ratios); chatbench itself is not part of the project and never runs here.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gevent_chat.core import protocol
from gevent_chat.core.events import Said
from gevent_chat.core.lines import render as render_line
from loadtest import compare
from loadtest.chatload import (
    PROMPT,
    Receiver,
    chat_text,
    make_nick,
    parse_address,
    parse_chat,
    step_levels,
)


def relayed(sender: str, seq: int, sent_at: float = 100.0, size: int = 32) -> bytes:
    """What the server sends the others when ``sender`` says line ``seq``."""
    return render_line(Said("lobby", sender, (chat_text(seq, sent_at, size),)))


def test_constants_match_the_server() -> None:
    assert protocol.NICK_PROMPT == PROMPT


@given(seq=st.integers(1, 10**9), sent_at=st.floats(0, 4e9), size=st.integers(0, 200))
def test_chat_text_round_trips_and_has_the_wanted_size(seq: int, sent_at: float, size: int) -> None:
    text = chat_text(seq, sent_at, size)
    assert len(text) == max(size, len(b"seq=%d t=%.6f" % (seq, sent_at)))
    assert protocol.is_clean_ascii(text)
    parsed = parse_chat(b"bob: " + text)
    assert parsed is not None
    assert parsed[:2] == (b"bob", seq)
    assert parsed[2] == pytest.approx(sent_at, abs=1e-6)


@pytest.mark.parametrize(
    "line", [b"*** bob: seq=1 t=2", b"bob: hello", b"bob: seq=x t=1", b"bob: seq=1 t=now", b": seq=1 t=1"]
)
def test_other_lines_are_not_load_test_lines(line: bytes) -> None:
    assert parse_chat(line) is None


def test_first_line_from_a_sender_starts_tracking_without_loss() -> None:
    receiver = Receiver()
    report = receiver.feed(relayed("bob", 17) + relayed("bob", 18), now=100.0)
    assert (report.lines, report.lost, report.out_of_order) == (2, 0, 0)


def test_gap_counts_each_missing_line_as_lost() -> None:
    receiver = Receiver()
    report = receiver.feed(relayed("bob", 1) + relayed("bob", 2) + relayed("bob", 5), now=100.0)
    assert (report.lost, report.out_of_order) == (2, 0)


def test_late_line_is_out_of_order() -> None:
    receiver = Receiver()
    receiver.feed(relayed("bob", 1), now=100.0)
    report = receiver.feed(relayed("bob", 3) + relayed("bob", 2) + relayed("bob", 4), now=100.0)
    assert (report.lost, report.out_of_order) == (1, 1)


def test_duplicate_line_is_out_of_order() -> None:
    report = Receiver().feed(relayed("bob", 1) + relayed("bob", 1), now=100.0)
    assert (report.lost, report.out_of_order) == (0, 1)


def test_senders_are_tracked_apart() -> None:
    report = Receiver().feed(relayed("bob", 1) + relayed("amy", 7) + relayed("bob", 2), now=100.0)
    assert (report.lines, report.lost, report.out_of_order) == (3, 0, 0)


def test_sender_who_left_is_forgotten() -> None:
    receiver = Receiver()
    receiver.feed(relayed("bob", 5) + protocol.notice("bob left (too slow)"), now=100.0)
    report = receiver.feed(relayed("bob", 1), now=100.0)  # a new bob starts again at 1
    assert (report.lost, report.out_of_order) == (0, 0)


def test_latency_is_receive_time_minus_send_time_in_ms() -> None:
    report = Receiver().feed(relayed("bob", 1, sent_at=100.0), now=100.25)
    [(latency, length)] = report.delivered
    assert latency == pytest.approx(250.0)
    assert length == len(relayed("bob", 1))


def test_clock_skew_never_gives_negative_latency() -> None:
    [(latency, _)] = Receiver().feed(relayed("bob", 1, sent_at=101.0), now=100.0).delivered
    assert latency == 0.0


def test_sample_reports_one_line_in_n_but_checks_all() -> None:
    receiver = Receiver(sample=3)
    data = b"".join(relayed("bob", seq) for seq in (1, 2, 3, 4, 5, 6, 7, 9))
    report = receiver.feed(data, now=100.0)
    assert (len(report.delivered), report.lines, report.lost) == (2, 8, 1)


def test_error_and_disconnect_notices_are_reported() -> None:
    data = protocol.notice("error: line too long (limit 4096 bytes)")
    data += protocol.notice("disconnected: too slow")
    report = Receiver().feed(data, now=100.0)
    assert report.errors == ["*** error: line too long (limit 4096 bytes)"]
    assert report.closing == "too slow"


def test_shutdown_notice_sets_closing() -> None:
    assert Receiver().feed(protocol.notice("server shutting down"), now=1.0).closing == "server shutting down"


@given(st.lists(st.integers(1, 40)), st.data())
def test_any_split_of_the_stream_gives_the_same_counts(seqs: list[int], data: st.DataObject) -> None:
    stream = b"".join(relayed("bob", seq) for seq in seqs) + protocol.notice("error: x")
    whole = Receiver().feed(stream, now=100.0)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    receiver = Receiver()
    totals = [0, 0, 0, 0]
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        part = receiver.feed(stream[start:end], now=100.0)
        counts = [part.lines, part.lost, part.out_of_order, len(part.errors)]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    assert totals == [whole.lines, whole.lost, whole.out_of_order, len(whole.errors)]


@given(st.lists(st.integers(1, 40), min_size=1))
def test_in_order_lines_are_never_lost_or_late(seqs: list[int]) -> None:
    ordered = sorted(set(seqs))
    contiguous = list(range(ordered[0], ordered[0] + len(ordered)))
    report = Receiver().feed(b"".join(relayed("bob", seq) for seq in contiguous), now=100.0)
    assert (report.lost, report.out_of_order) == (0, 0)


def test_nicks_follow_the_server_rules() -> None:
    nick = make_nick("4194304_ffff", 999_999)
    assert protocol.is_valid_nick(nick)


def test_overlong_nick_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 32"):
        make_nick("x" * 30, 1)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("tcp://127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("tcp://localhost:9000/", ("localhost", 9000)),
        ("localhost", ("localhost", 8000)),
        ("[::1]:9000", ("::1", 9000)),
        ("::1", ("::1", 8000)),
    ],
)
def test_host_forms_are_understood(host: str, expected: tuple[str, int]) -> None:
    assert parse_address(host) == expected


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8000", "127.0.0.1:http", "127.0.0.1:70000", ":8000", "[::1"]
)
def test_bad_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="host"):
        parse_address(host)


@pytest.mark.parametrize(
    ("step", "peak", "levels"),
    [(100, 250, [100, 200, 250, 150, 50]), (50, 100, [50, 100, 50]), (10, 5, [5]), (5, 5, [5])],
)
def test_steps_climb_to_the_peak_and_back(step: int, peak: int, levels: list[int]) -> None:
    assert step_levels(step, peak) == levels


def test_compare_takes_chatbench_last_json_line() -> None:
    out = 'warming up\n{"delivered_per_s": 10, "lat_p50_ms": 0.5}\n'
    assert compare.parse_result(out) == {"delivered_per_s": 10, "lat_p50_ms": 0.5}
    with pytest.raises(ValueError, match="no JSON result"):
        compare.parse_result("panic: oops\n")


def test_compare_medians_skip_missing_and_boolean_values() -> None:
    assert compare.median([3, None, 1, 2]) == 2
    assert compare.median([True, None]) is None


@pytest.mark.parametrize(
    ("ours", "theirs", "text"),
    [(50.0, 100.0, "0.50x"), (3.0, 1.0, "3.00x"), (1.0, 0.0, "-"), (None, 1.0, "-")],
)
def test_compare_ratio_is_gevent_over_go(ours: float | None, theirs: float | None, text: str) -> None:
    assert compare.format_ratio(ours, theirs) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(4899258.0, "4,899,258"), (150.4, "150"), (1.048, "1.05"), (0.8524, "0.852"), (None, "-")],
)
def test_compare_values_keep_three_significant_figures(value: float | None, text: str) -> None:
    assert compare.format_value(value) == text


def test_compare_table_has_a_ratio_column_and_every_run() -> None:
    case = compare.Case("light", ("-mode", "load"), ("lat_p50_ms",))
    runs = {"gevent-chat": [{"lat_p50_ms": 2.0}, {"lat_p50_ms": 4.0}], "go": [{"lat_p50_ms": 1.0}] * 2}
    lines = compare.table(case, runs)
    assert lines[0] == "# light: -mode load"
    assert lines[1].split() == ["field", "gevent-chat", "go", "gevent/go"]
    assert lines[2].split() == ["lat_p50_ms", "3", "[2", "4]", "1", "[1", "1]", "3.00x"]


def test_compare_table_shows_broken_contracts_only_when_they_happen() -> None:
    case = compare.Case("light", (), ("lat_p50_ms",))
    assert len(compare.table(case, {"gevent-chat": [{"lat_p50_ms": 1.0, "duplicates": 0}]})) == 3
    lines = compare.table(case, {"gevent-chat": [{"lat_p50_ms": 1.0, "duplicates": 2}]})
    assert lines[-1].split() == ["duplicates", "2"]


def test_compare_run_bound_comes_from_the_case_flags() -> None:
    case = compare.Case("x", ("-duration", "10s", "-warmup", "500ms"))
    assert case.seconds() == pytest.approx(10.5 + compare.RUN_SLACK)
