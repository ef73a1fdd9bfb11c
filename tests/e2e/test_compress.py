"""Compression end to end: real backends, raw client bytes, every algorithm decoded and
compared; streaming as it comes; 50 MiB through with flat memory."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest
import zstandard

from e2e.backends import Request, chunk, fixed, head_bytes
from e2e.proxy import config
from e2e.wire import Response, Wire

PAGE = b"".join(b"<p>paragraph %d of a page that compresses well</p>\n" % n for n in range(3000))
HTML = (("Content-Type", "text/html; charset=utf-8"), ("ETag", '"page-1"'))


def compressing(*targets: Any, **compress: Any) -> dict[str, Any]:
    return config(*targets, route={"compress": compress})


def get(port: int, accept: str | None, method: str = "GET", version: str = "1.1") -> Response:
    lines = [f"{method} / HTTP/{version}", "Host: a"]
    if accept is not None:
        lines.append(f"Accept-Encoding: {accept}")
    with Wire(port) as wire:
        wire.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return wire.read_response(head=method == "HEAD")


def decode(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return zlib.decompress(data, 31)
    if encoding == "br":
        return bytes(brotli.decompress(data))
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
@pytest.mark.parametrize("encoding", ["zstd", "br", "gzip"])
def test_every_algorithm_round_trips(backend, bascule, encoding, framing):
    proxy = bascule(compressing(backend(fixed(200, PAGE, HTML, framing))))
    response = get(proxy.port, f"{encoding}, identity;q=0.5")
    assert response.status == 200
    assert response.header("content-encoding") == encoding
    assert response.header("content-length") is None
    assert response.chunked
    assert response.terminal_chunk
    assert response.header("vary") == "Accept-Encoding"
    assert response.header("etag") == 'W/"page-1"'
    assert decode(encoding, response.body) == PAGE
    assert len(response.body) < len(PAGE) / 5
    line = proxy.last_log()
    assert line["bytes_out"] == len(response.body)  # what the client was sent


def test_the_route_order_breaks_ties_and_q_values_decide(backend, bascule):
    proxy = bascule(compressing(backend(fixed(200, PAGE, HTML)), algorithms=["gzip", "br"]))
    assert get(proxy.port, "br, gzip, zstd").header("content-encoding") == "gzip"
    assert get(proxy.port, "br, gzip;q=0.9").header("content-encoding") == "br"
    assert get(proxy.port, "zstd").header("content-encoding") is None


def test_a_client_accepting_no_algorithm_gets_the_response_as_sent_with_vary(backend, bascule):
    proxy = bascule(compressing(backend(fixed(200, PAGE, HTML))))
    for accept in (None, "identity", "deflate"):
        response = get(proxy.port, accept)
        assert response.header("content-encoding") is None
        assert response.header("content-length") == str(len(PAGE))
        assert response.header("etag") == '"page-1"'
        assert response.header("vary") == "Accept-Encoding"
        assert response.body == PAGE


def test_what_must_not_be_compressed_passes_untouched(backend, bascule):
    encoded = zlib.compress(PAGE)
    a = backend(fixed(200, encoded, (*HTML, ("Content-Encoding", "deflate"))))
    b = backend(fixed(200, PAGE, (("Content-Type", "image/x-raw"),)))
    c = backend(fixed(200, b"<p>short</p>", HTML))
    for target, body in ((a, encoded), (b, PAGE), (c, b"<p>short</p>")):
        proxy = bascule(compressing(target))
        response = get(proxy.port, "gzip, br, zstd")
        assert response.header("content-encoding") in (None, "deflate")
        assert response.header("content-length") == str(len(body))
        assert response.body == body
    proxy = bascule(compressing(backend(fixed(200, PAGE, HTML))))
    head = get(proxy.port, "gzip", method="HEAD")
    assert head.header("content-encoding") is None
    assert head.header("content-length") == str(len(PAGE))


def test_an_http_1_0_client_gets_a_body_ended_by_the_close(backend, bascule):
    proxy = bascule(compressing(backend(fixed(200, PAGE, HTML))))
    response = get(proxy.port, "gzip", version="1.0")
    assert response.header("content-encoding") == "gzip"
    assert response.header("transfer-encoding") is None
    assert response.header("connection") == "close"
    assert decode("gzip", response.body) == PAGE


def test_compressed_chunks_reach_the_client_as_they_come(backend, bascule):
    release = threading.Event()
    first, second = b"<p>first part</p>" * 200, b"<p>second part</p>" * 200

    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head_bytes(200, [*HTML, ("Transfer-Encoding", "chunked")]) + chunk(first))
        await writer.drain()
        await asyncio.to_thread(release.wait, 5)
        writer.write(chunk(second) + b"0\r\n\r\n")
        await writer.drain()
        return True

    proxy = bascule(compressing(backend(slow)))
    with Wire(proxy.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        while wire.file.readline() != b"\r\n":
            pass  # the head
        size = int(wire.file.readline(), 16)
        data = wire.file.read(size + 2)[:-2]
        decoder = zlib.decompressobj(31)
        assert decoder.decompress(data) == first  # before the backend sent the rest
        release.set()
        rest = b""
        while (size := int(wire.file.readline(), 16)) != 0:
            rest += wire.file.read(size + 2)[:-2]
        assert decoder.decompress(rest) + decoder.flush() == second


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_fifty_mib_compress_with_flat_memory(backend, bascule):
    """The backend, Bascule and the client share this process: their peak together stays
    far below the response's size, so nothing holds the body whole."""
    total, piece = 50 * 1024 * 1024, 64 * 1024
    text = b"".join(b"row %08d,some,values,that,repeat\n" % n for n in range(piece // 34 + 1))[
        :piece
    ]

    async def big(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            head_bytes(200, [("Content-Type", "text/csv"), ("Content-Length", str(total))])
        )
        for _ in range(total // piece):
            writer.write(text)
            await writer.drain()
        return True

    proxy = bascule(compressing(backend(big)))
    expected = hashlib.sha256(text * (total // piece)).hexdigest()
    peak, start = [0], rss()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with Wire(proxy.port, timeout=60) as wire:
            wire.send(b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
            while wire.file.readline() != b"\r\n":
                pass
            decoder, digest, received, sent = zlib.decompressobj(31), hashlib.sha256(), 0, 0
            while (size := int(wire.file.readline(), 16)) != 0:
                data = wire.file.read(size + 2)[:-2]
                sent += len(data)
                out = decoder.decompress(data)
                digest.update(out)
                received += len(out)
            digest.update(decoder.flush())
    finally:
        done.set()
        watcher.join()
    assert received == total
    assert digest.hexdigest() == expected
    assert sent < total / 10
    assert peak[0] - start < 20 * 1024 * 1024, f"grew by {(peak[0] - start) >> 20} MiB"
