"""normalize_host: the raw Host header reduced to the form route hosts are stored in."""

import pytest

from bascule.routing import normalize_host


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"api.example.com", b"api.example.com"),
        (b"API.Example.COM", b"api.example.com"),
        (b"api.example.com:8080", b"api.example.com"),
        (b"example.com.", b"example.com"),
        (b"Example.com.:443", b"example.com"),
        (b"127.0.0.1:8080", b"127.0.0.1"),
        (b"[::1]", b"[::1]"),
        (b"[::1]:8080", b"[::1]"),
        (b"[2001:DB8::1]:443", b"[2001:db8::1]"),
        (b"", b""),
    ],
)
def test_normalize_host_lowercases_and_strips_port(raw: bytes, expected: bytes) -> None:
    assert normalize_host(raw) == expected


def test_normalize_host_keeps_an_unclosed_ipv6_literal_whole() -> None:
    # Malformed: kept (lower-cased) so that it can match no route host.
    assert normalize_host(b"[::1:80") == b"[::1:80"
