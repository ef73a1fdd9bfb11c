"""Reading the server name from a ClientHello: real ones made by Python's ssl module, split
every way, and bytes that are not one."""

from __future__ import annotations

import contextlib
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.tcp.sni import MAX_RECORDS, ClientHello, NotTls, ServerNames, read_server_name


def client_hello(server_name: str | None, **options: object) -> bytes:
    """The first flight of a real TLS client (Python's ssl) to `server_name`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for key, value in options.items():
        setattr(context, key, value)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def records(hello: bytes, size: int) -> bytes:
    """The same handshake message re-split into TLS records of `size` bytes."""
    body = hello[5:]
    out = b""
    for start in range(0, len(body), size):
        fragment = body[start : start + size]
        out += b"\x16\x03\x01" + len(fragment).to_bytes(2, "big") + fragment
    return out


HELLO = client_hello("api.example.com")


def test_the_server_name_of_a_real_client_hello() -> None:
    assert read_server_name(HELLO) == ClientHello("api.example.com")


def test_a_client_hello_without_a_name_is_valid() -> None:
    assert read_server_name(client_hello(None)) == ClientHello(None)


def test_a_tls12_only_client_hello() -> None:
    hello = client_hello("a.example.com", maximum_version=ssl.TLSVersion.TLSv1_2)
    assert read_server_name(hello) == ClientHello("a.example.com")


def test_names_are_lower_case_without_the_trailing_dot() -> None:
    assert read_server_name(client_hello("API.Example.COM.")) == ClientHello("api.example.com")


def test_each_prefix_asks_for_more_and_never_too_much() -> None:
    """An incomplete ClientHello is never an error; the count asked for is never past the
    end of the record under way, so waiting for it cannot deadlock."""
    for end in range(len(HELLO)):
        wanted = read_server_name(HELLO[:end])
        assert isinstance(wanted, int)
        assert end < wanted <= len(HELLO)


def test_a_client_hello_split_into_records_is_reassembled() -> None:
    for size in (1 + len(HELLO) // MAX_RECORDS, 100, 1000):
        assert read_server_name(records(HELLO, size)) == ClientHello("api.example.com")


def test_more_records_than_allowed_are_refused() -> None:
    with pytest.raises(NotTls, match="more than 16 records"):
        read_server_name(records(HELLO, 10))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "plain text instead of a TLS ClientHello"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "plain text"),
        (b"\x80\x2e\x01\x03\x01", "SSLv2-style"),
        (b"\x17\x03\x03\x00\x10", "not 0x16"),
        (b"\x16\x02\x00\x00\x10", "record version 2.0"),
        (b"\x16\x03\x01\x00\x00", "a TLS record of 0 bytes"),
        (b"\x16\x03\x01\xff\xff", "a TLS record of 65535 bytes"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "of type 2, not 1"),
        (b"\x16\x03\x01\x00\x04\x01\x10\x00\x00", "more than 65536"),
        (b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03", "truncated"),
    ],
)
def test_what_is_not_a_client_hello_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(NotTls, match=reason.replace("(", r"\(").replace(".", r"\.")):
        read_server_name(data)


def test_a_name_that_is_not_a_host_name_is_refused() -> None:
    hello = HELLO.replace(b"api.example.com", b"api.exa\x00ple.com")
    with pytest.raises(NotTls, match="is not a host name"):
        read_server_name(hello)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_result_an_int_or_not_tls(data: bytes) -> None:
    try:
        result = read_server_name(data)
    except NotTls:
        return
    assert isinstance(result, ClientHello | int)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(HELLO) - 1), st.integers(0, 255))
def test_a_corrupted_client_hello_never_raises_anything_else(position: int, byte: int) -> None:
    data = HELLO[:position] + bytes((byte,)) + HELLO[position + 1 :]
    with contextlib.suppress(NotTls):
        read_server_name(data)


def test_server_names_exact_first_then_longest_wildcard() -> None:
    names = ServerNames({"a.example.com": 1, "*.example.com": 2, "*.b.example.com": 3})
    assert names.lookup("a.example.com") == 1
    assert names.lookup("x.example.com") == 2
    assert names.lookup("x.y.example.com") == 2
    assert names.lookup("x.b.example.com") == 3
    assert names.lookup("b.example.com") == 2
    assert names.lookup("example.com") is None
    assert names.lookup("example.org") is None
