"""PROXY protocol headers as byte transcripts: what Bascule sends, what it accepts, and
what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.tcp.proxy_protocol import (
    SIGNATURE_V2,
    ProxyHeader,
    ProxyHeaderError,
    encode,
    parse,
)

V4 = (("203.0.113.7", 40000), ("192.0.2.1", 443))
V6 = (("2001:db8::7", 40000), ("2001:db8::1", 443))


def test_v1_tcp4() -> None:
    assert encode(1, *V4) == b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n"


def test_v1_tcp6() -> None:
    assert encode(1, *V6) == b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n"


def test_v1_unknown_without_addresses() -> None:
    assert encode(1, None, ("192.0.2.1", 443)) == b"PROXY UNKNOWN\r\n"


def test_v2_tcp4() -> None:
    assert encode(2, *V4) == (
        SIGNATURE_V2
        + b"\x21\x11\x00\x0c"
        + bytes((203, 0, 113, 7, 192, 0, 2, 1))
        + (40000).to_bytes(2, "big")
        + (443).to_bytes(2, "big")
    )


def test_v2_tcp6_length_and_family() -> None:
    header = encode(2, *V6)
    assert header[12:16] == b"\x21\x21\x00\x24"
    assert len(header) == 16 + 36


def test_v2_local_without_addresses() -> None:
    assert encode(2, None, None) == SIGNATURE_V2 + b"\x20\x00\x00\x00"


def test_mixed_families_are_written_as_ipv6() -> None:
    header = encode(1, ("203.0.113.7", 1), ("2001:db8::1", 2))
    assert header == b"PROXY TCP6 ::ffff:cb00:7107 2001:db8::1 1 2\r\n"


def test_ipv4_mapped_addresses_are_written_as_ipv4() -> None:
    header = encode(1, ("::ffff:203.0.113.7", 1), ("::ffff:192.0.2.1", 2))
    assert header == b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n"


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("addresses", [V4, V6])
def test_what_is_encoded_parses_back(version: int, addresses: tuple) -> None:
    header = encode(version, *addresses)
    assert parse(header + b"payload") == ProxyHeader(len(header), *addresses, version)


def test_unknown_and_local_name_nobody() -> None:
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx") == ProxyHeader(
        len(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), None, None, 1
    )
    assert parse(encode(2, None, None)) == ProxyHeader(16, None, None, 2)


def test_v2_tlvs_after_the_addresses_are_skipped() -> None:
    tlv = b"\x04\x00\x03abc"  # PP2_TYPE_NOOP
    body = encode(2, *V4)[16:] + tlv
    header = SIGNATURE_V2 + b"\x21\x11" + len(body).to_bytes(2, "big") + body
    assert parse(header + b"x") == ProxyHeader(len(header), *V4, 2)


def test_each_prefix_asks_for_more_bytes_and_within_the_header() -> None:
    for header in (encode(1, *V6), encode(2, *V6)):
        for end in range(len(header)):
            wanted = parse(header[:end])
            assert isinstance(wanted, int)
            assert end < wanted <= len(header)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "does not start with a PROXY header"),
        (b"PROXI ", "does not start with a PROXY header"),
        (b"\x00\x01", "does not start with a PROXY header"),
        (b"\r\n\r\n\x00\r\nQUIX\n", "does not start with a PROXY header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "a v1 header is"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown v1 protocol"),
        (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not an IPv6 address"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "not an IP address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF"),
        (b"PROXY " + b"x" * 200, "longer than 107 bytes"),
        (SIGNATURE_V2 + b"\x11\x11\x00\x00", "unknown v2 version 1"),
        (SIGNATURE_V2 + b"\x22\x11\x00\x00", "unknown v2 command 2"),
        (SIGNATURE_V2 + b"\x21\x12\x00\x0c" + b"\x00" * 12, "UDP"),
        (SIGNATURE_V2 + b"\x21\x11\x00\x04" + b"\x00" * 4, "need 12 bytes"),
        (SIGNATURE_V2 + b"\x21\x41\x00\x00", "unknown v2 address family 4"),
    ],
)
def test_what_is_not_a_header_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_an_int_or_an_error(data: bytes) -> None:
    for prefix in (b"", b"PROXY ", SIGNATURE_V2):
        try:
            result = parse(prefix + data)
        except ProxyHeaderError:
            continue
        assert isinstance(result, ProxyHeader | int)
        if isinstance(result, ProxyHeader):
            assert result.length <= len(prefix + data)
