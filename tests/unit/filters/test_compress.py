"""Compression as pure logic: Accept-Encoding negotiation, which responses qualify and the
header lines they get, and the encoders (every output decodes, as it is produced)."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from bascule.filters.compress import (
    BrotliEncoder,
    Compression,
    GzipEncoder,
    ZstdEncoder,
    choose_encoding,
    parse_accept_encoding,
)
from bascule.http.forwarding import names_pattern
from bascule.http.head import RequestHead, ResponseHead

PREFERENCE = ("zstd", "br", "gzip")


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (b"gzip, deflate, br, zstd", "zstd"),  # a browser: all equal, the route's order
        (b"gzip, deflate, br", "br"),
        (b"gzip;q=1.0, br;q=0.5", "gzip"),
        (b"br;q=0, gzip;q=0.1", "gzip"),
        (b"br;q=0", None),
        (b"*", "zstd"),
        (b"*;q=0.5, gzip", "gzip"),
        (b"x-gzip", "gzip"),
        (b"GZIP", "gzip"),
        (b"deflate, compress", None),
        (b"identity", None),
        (b"gzip;q=0.5, identity", None),  # identity preferred strictly
        (b"gzip, identity;q=0", "gzip"),
        (b"gzip;q=abc", None),  # an unreadable q is 0
        (b"", None),
        (None, None),
        (b" , ;q=1,", None),
    ],
)
def test_the_encoding_is_chosen_by_q_value_then_preference(
    accept: bytes | None, chosen: str | None
) -> None:
    assert choose_encoding(accept, PREFERENCE) == chosen


def test_q_values_are_clamped_to_0_1() -> None:
    assert parse_accept_encoding(b"gzip;q=7, br;Q=0.25") == {"gzip": 1.0, "br": 0.25}


# -- which responses qualify ---------------------------------------------------------------


def compression(min_size: int = 1024) -> Compression:
    return Compression(
        PREFERENCE,
        min_size,
        ["text/*", "application/json"],
        {"gzip": 5, "br": 4, "zstd": 3},
        names_pattern((b"content-length", b"etag")),
    )


def request(method: bytes = b"GET", *lines: bytes) -> RequestHead:
    raw = b"%s / HTTP/1.1\r\nHost: a\r\n%b\r\n" % (
        method,
        b"".join(line + b"\r\n" for line in lines),
    )
    return RequestHead(raw, "1.1", method, b"/")


def response(status: int = 200, *lines: bytes, length: int = 4096) -> ResponseHead:
    all_lines = [b"Content-Length: %d" % length, *lines]
    raw = b"HTTP/1.1 %d X\r\n%b\r\n" % (status, b"".join(line + b"\r\n" for line in all_lines))
    return ResponseHead(raw, "1.1", status)


BROWSER = b"Accept-Encoding: gzip, deflate, br, zstd"
HTML = b"Content-Type: text/html; charset=utf-8"


def test_a_text_response_to_a_browser_is_compressed_with_its_headers() -> None:
    encoder, lines = compression().apply(request(b"GET", BROWSER), response(200, HTML))
    assert encoder is not None
    assert encoder.name == b"zstd"
    assert lines == b"\r\nVary: Accept-Encoding\r\nContent-Encoding: zstd"


def test_a_strong_etag_becomes_weak_and_a_weak_one_stays() -> None:
    for etag, weak in ((b'"v1"', b'W/"v1"'), (b'W/"v2"', b'W/"v2"')):
        _, lines = compression().apply(
            request(b"GET", BROWSER), response(200, HTML, b"ETag: " + etag)
        )
        assert lines.endswith(b"\r\nETag: " + weak)


def test_vary_is_added_once() -> None:
    for vary in (b"Vary: Accept-Encoding", b"Vary: cookie, accept-encoding", b"Vary: *"):
        _, lines = compression().apply(request(b"GET", BROWSER), response(200, HTML, vary))
        assert b"Vary" not in lines
    _, lines = compression().apply(request(b"GET", BROWSER), response(200, HTML, b"Vary: Cookie"))
    assert lines.startswith(b"\r\nVary: Accept-Encoding")


def test_a_client_without_accept_encoding_gets_vary_only() -> None:
    encoder, lines = compression().apply(request(), response(200, HTML))
    assert encoder is None
    assert lines == b"\r\nVary: Accept-Encoding"


@pytest.mark.parametrize(
    ("method", "status", "request_lines", "response_lines", "length"),
    [
        (b"HEAD", 200, [BROWSER], [HTML], 4096),
        (b"GET", 204, [BROWSER], [HTML], 4096),
        (b"GET", 206, [BROWSER], [HTML, b"Content-Range: bytes 0-9/100"], 4096),
        (b"GET", 304, [BROWSER], [HTML], 4096),
        (b"GET", 200, [BROWSER, b"Range: bytes=0-9"], [HTML], 4096),
        (b"GET", 200, [BROWSER], [HTML, b"Content-Encoding: gzip"], 4096),
        (b"GET", 200, [BROWSER], [HTML, b"Cache-Control: public, no-transform"], 4096),
        (b"GET", 200, [BROWSER], [b"Content-Type: image/png"], 4096),
        (b"GET", 200, [BROWSER], [], 4096),  # no Content-Type
        (b"GET", 200, [BROWSER], [HTML], 1023),  # below min_size
    ],
)
def test_responses_that_must_not_be_compressed_go_as_they_are(
    method: bytes, status: int, request_lines: list[bytes], response_lines: list[bytes], length: int
) -> None:
    encoder, lines = compression().apply(
        request(method, *request_lines), response(status, *response_lines, length=length)
    )
    assert encoder is None
    assert b"Content-Encoding" not in lines


def test_types_match_exactly_or_by_prefix_and_ignore_parameters() -> None:
    c = compression()
    for content_type, compressed in (
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"text/css", True),
        (b"application/json-patch", False),
        (b"textual/plain", False),
    ):
        encoder, _ = c.apply(
            request(b"GET", BROWSER), response(200, b"Content-Type: " + content_type)
        )
        assert (encoder is not None) == compressed, content_type


# -- encoders ------------------------------------------------------------------------------

TEXT = b"".join(b"line %d of a rather repetitive report\n" % n for n in range(20000))


def decoders() -> dict[bytes, object]:
    return {
        b"gzip": zlib.decompressobj(31),
        b"br": brotli.Decompressor(),
        b"zstd": zstandard.ZstdDecompressor().decompressobj(),
    }


def feed(decoder: object, data: bytes) -> bytes:
    if isinstance(decoder, brotli.Decompressor):
        out = piece = decoder.process(data)
        while piece:  # it hands its output over in slices of 32 KiB
            piece = decoder.process(b"")
            out += piece
        return bytes(out)
    return bytes(decoder.decompress(data))  # type: ignore[attr-defined]


@pytest.mark.parametrize("make", [GzipEncoder, BrotliEncoder, ZstdEncoder])
def test_every_chunk_decodes_as_soon_as_it_is_sent(make: type) -> None:
    encoder = make(3)
    decoder = decoders()[encoder.name]
    pieces = [TEXT[i : i + 50000] for i in range(0, len(TEXT), 50000)]
    sent = 0
    for piece in pieces:
        out = encoder.compress(piece)
        sent += len(out)
        assert feed(decoder, out) == piece  # flushed: nothing held back
    feed(decoder, encoder.finish())
    assert sent < len(TEXT) / 5


def test_gzip_output_is_a_gzip_file() -> None:
    encoder = GzipEncoder(5)
    data = encoder.compress(TEXT[:1000]) + encoder.compress(TEXT[1000:]) + encoder.finish()
    assert gzip.decompress(data) == TEXT
