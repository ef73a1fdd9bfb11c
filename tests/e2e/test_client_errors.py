"""When the client sends what cannot be accepted: the status, then the connection closes."""

from __future__ import annotations

import time

import pytest

from e2e.backends import echo, fixed
from e2e.proxy import config
from e2e.wire import Wire

LIMITS = {"max_header_bytes": "2KiB", "max_uri_bytes": "1KiB", "max_body_bytes": "1KiB"}


@pytest.fixture
def proxy(backend, bascule):
    return bascule(config(backend(echo), listener={"limits": LIMITS}))


def refused(proxy, data: bytes) -> tuple[int, bytes]:
    """Send `data`; the proxy must answer once and close. Returns (status, body)."""
    with Wire(proxy.port) as wire:
        wire.send(data)
        response = wire.read_response()
        assert wire.closed_within(2), "the connection stayed open after a refusal"
    assert response.header("connection") == "close"
    return response.status, response.body


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"NONSENSE\r\n\r\n", id="malformed-request-line"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            id="cl-and-te",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            id="differing-duplicate-cl",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nab\r\n0\r\n\r\n",
            id="bad-chunk-size",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", id="bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", id="nul-in-header"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", id="space-in-name"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", id="negative-cl"),
    ],
)
def test_malformed_request_is_400_and_closed(proxy, data):
    status, body = refused(proxy, data)
    assert status == 400
    assert body.startswith(b"400 Bad Request: ")
    log = proxy.last_log()
    assert (log["status"], log["error_source"]) == (400, "downstream")


def test_header_block_over_limit_is_431(proxy):
    status, _ = refused(proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n")
    assert status == 431


def test_header_block_over_limit_is_431_before_it_ends(proxy):
    status, _ = refused(proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 3000)
    assert status == 431


def test_uri_over_limit_is_414(proxy):
    status, _ = refused(proxy, b"GET /" + b"u" * 1500 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 414


def test_body_over_limit_by_content_length_is_413_up_front(backend, bascule):
    server = backend(echo)
    proxy = bascule(config(server, listener={"limits": LIMITS}))
    status, body = refused(proxy, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
    assert status == 413
    assert b"larger than 1024 bytes" in body
    assert server.requests == []  # refused before anything went upstream


def test_chunked_body_over_limit_is_413_while_streaming(backend, bascule):
    server = backend(echo)
    proxy = bascule(config(server, listener={"limits": LIMITS}))
    piece = b"400\r\n" + b"c" * 1024 + b"\r\n"
    status, _ = refused(
        proxy, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + piece * 3
    )
    assert status == 413


def test_unsupported_http_version_is_505(proxy):
    status, _ = refused(proxy, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    assert status in (400, 505)


def test_slowloris_head_is_408_within_header_timeout(backend, bascule):
    proxy = bascule(config(backend(fixed()), listener={"timeouts": {"header": "500ms"}}))
    started = time.monotonic()
    with Wire(proxy.port) as wire:
        for piece in (b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"X-A: 1\r\n", b"X-B: 2\r\n"):
            wire.send(piece)
            time.sleep(0.15)  # each piece well within any per-read timer
        response = wire.read_response()
        assert wire.closed_within(1)
    assert response.status == 408
    assert 0.45 < time.monotonic() - started < 1.5
    assert proxy.last_log()["error_source"] == "downstream"


def test_stalled_request_body_is_408_within_body_timeout(backend, bascule):
    proxy = bascule(config(backend(echo), listener={"timeouts": {"body": "300ms"}}))
    with Wire(proxy.port) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        response = wire.read_response()
        assert wire.closed_within(1)
    assert response.status == 408


def test_idle_keep_alive_connection_is_closed_after_keepalive_timeout(backend, bascule):
    proxy = bascule(config(backend(fixed()), listener={"timeouts": {"keepalive": "300ms"}}))
    with Wire(proxy.port) as wire:
        assert wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
        started = time.monotonic()
        assert wire.closed_within(2)
    assert 0.25 < time.monotonic() - started < 1.0


def test_connection_without_request_is_closed_after_header_timeout(bascule):
    proxy = bascule(config(1, listener={"timeouts": {"header": "300ms"}}))
    with Wire(proxy.port) as wire:
        assert wire.read_all() == b""  # nothing asked, nothing answered
