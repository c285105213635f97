"""Addresses as the log writes them: bracketed IPv6, and URLs a browser can open."""

from __future__ import annotations

import pytest

from gevent_chat.core.address import browsable_url, format_address


def test_ipv6_hosts_are_bracketed() -> None:
    assert format_address("::1", 8000) == "[::1]:8000"
    assert format_address("127.0.0.1", 8000) == "127.0.0.1:8000"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080/"),
        ("", "http://127.0.0.1:8080/"),
        ("::", "http://[::1]:8080/"),
        ("192.0.2.7", "http://192.0.2.7:8080/"),
        ("2001:db8::7", "http://[2001:db8::7]:8080/"),
        ("chat.example", "http://chat.example:8080/"),
    ],
)
def test_a_wildcard_bind_is_browsed_on_the_loopback_and_others_as_bound(host: str, url: str) -> None:
    assert browsable_url("http", host, 8080) == url
