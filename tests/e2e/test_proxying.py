"""Proxying basics: bodies both ways, framing, keep-alive, pipelining."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time

import httpx

from e2e.backends import echo, fixed, head_bytes
from e2e.proxy import config
from e2e.wire import Wire

BODY = os.urandom(3 * 1024 * 1024 + 17)


def test_get_and_post_pass_through(backend, bascule):
    proxy = bascule(config(backend(echo)))
    with httpx.Client() as client:
        got = client.get(proxy.url("/a?x=1")).json()
        posted = client.post(proxy.url("/b"), content=b"payload").json()
    assert (got["method"], got["path"]) == ("GET", "/a?x=1")
    assert (posted["method"], posted["path"], posted["body_length"]) == ("POST", "/b", 7)


def test_content_length_request_body_reaches_backend_intact(backend, bascule):
    proxy = bascule(config(backend(echo)))
    seen = httpx.post(proxy.url("/up"), content=BODY).json()
    assert seen["body_sha256"] == hashlib.sha256(BODY).hexdigest()
    assert dict(seen["headers"])["Content-Length"] == str(len(BODY))


def test_chunked_request_body_reaches_backend_intact(backend, bascule):
    proxy = bascule(config(backend(echo)))
    pieces = (BODY[i : i + 100_000] for i in range(0, len(BODY), 100_000))
    seen = httpx.post(proxy.url("/up"), content=pieces).json()
    assert dict(seen["headers"])["Transfer-Encoding"] == "chunked"
    assert seen["body_length"] == len(BODY)
    assert seen["body_sha256"] == hashlib.sha256(BODY).hexdigest()


def test_content_length_response_passes_with_its_length(backend, bascule):
    proxy = bascule(config(backend(fixed(body=BODY))))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert response.header("content-length") == str(len(BODY))
    assert not response.chunked
    assert response.body == BODY


def test_chunked_response_is_rechunked_with_terminal_chunk(backend, bascule):
    proxy = bascule(config(backend(fixed(body=b"abcdefghij", framing="chunked"))))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        again = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # still in step
    assert response.chunked
    assert response.terminal_chunk
    assert response.body == b"abcdefghij"
    assert again.body == b"abcdefghij"


def test_read_until_close_response_is_chunked_to_http11_client(backend, bascule):
    proxy = bascule(config(backend(fixed(body=b"until close", framing="close"))))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        second = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # the client keeps alive
    assert response.chunked
    assert response.terminal_chunk
    assert response.body == b"until close"
    assert second.body == b"until close"


def test_read_until_close_response_is_raw_and_closed_to_http10_client(backend, bascule):
    proxy = bascule(config(backend(fixed(body=b"until close", framing="close"))))
    with Wire(proxy.port) as wire:
        wire.send(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        raw = wire.read_all()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"until close"


def test_head_response_keeps_content_length_and_sends_no_body(backend, bascule):
    proxy = bascule(config(backend(fixed(body=b"x" * 1234))))
    with Wire(proxy.port) as wire:
        response = wire.request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", head=True)
        follow = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert response.header("content-length") == "1234"
    assert follow.status == 200
    assert follow.body == b"x" * 1234


def test_204_and_304_have_no_body_and_no_chunking(backend, bascule):
    for status in (204, 304):
        proxy = bascule(config(backend(fixed(status=status, body=b"", framing="close"))))
        with Wire(proxy.port) as wire:
            response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            follow = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert response.status == status
        assert "transfer-encoding" not in response.names()
        assert follow.status == status


def test_client_keep_alive_and_upstream_reuse(backend, bascule):
    server = backend(fixed())
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        for _ in range(5):
            assert wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").body == b"hello"
    assert len(server.requests) == 5
    assert server.connections == 1


def test_http10_client_without_keep_alive_gets_close(backend, bascule):
    proxy = bascule(config(backend(fixed())))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
        assert response.header("connection") == "close"
        assert response.body == b"hello"
        assert wire.closed_within(2)


def test_http10_client_with_keep_alive_stays_open(backend, bascule):
    proxy = bascule(config(backend(fixed())))
    with Wire(proxy.port) as wire:
        request = b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
        assert wire.request(request).header("connection") == "keep-alive"
        assert wire.request(request).body == b"hello"


def test_pipelined_requests_are_answered_in_order(backend, bascule):
    proxy = bascule(config(backend(echo)))
    with Wire(proxy.port) as wire:
        wire.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3)))
        paths = [json.loads(wire.read_response().body)["path"] for _ in range(3)]
    assert paths == ["/0", "/1", "/2"]


def test_pipelined_request_after_a_body_is_not_part_of_it(backend, bascule):
    proxy = bascule(config(backend(echo)))
    with Wire(proxy.port) as wire:
        wire.send(
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        seen = [json.loads(wire.read_response().body) for _ in range(3)]
    assert [(s["path"], s["body_length"]) for s in seen] == [("/a", 3), ("/b", 2), ("/c", 0)]


def test_chunked_request_terminator_split_across_reads_keeps_connection_in_step(backend, bascule):
    proxy = bascule(config(backend(echo)))
    with Wire(proxy.port) as wire:
        wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire.send(
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        )
        time.sleep(0.05)
        wire.send(b"\r\n")
        first = json.loads(wire.read_response().body)
        wire.send(b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy")
        second = json.loads(wire.read_response().body)
    assert (first["path"], first["body_length"]) == ("/a", 3)
    assert (second["path"], second["body_length"]) == ("/b", 2)


def test_chunked_response_terminator_split_across_reads_keeps_upstream_reusable(backend, bascule):
    async def split_end(request, writer):
        writer.write(head_bytes(200, [("Transfer-Encoding", "chunked")]) + b"2\r\nok\r\n0\r\n\r")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"\n")
        return True

    server = backend(split_end)
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        for _ in range(2):
            response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert response.terminal_chunk
            assert response.body == b"ok"
    assert server.connections == 1
