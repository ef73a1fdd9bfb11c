"""upstream_request_head / downstream_response_head as byte transcripts."""

from __future__ import annotations

from recorder import request_reader, response_reader

from bascule.http.forwarding import (
    RequestForwarding,
    downstream_response_head,
    names_pattern,
    upstream_request_head,
)

HTTP = RequestForwarding(b"http")


def parse_request(raw: bytes):
    reader, rec = request_reader()
    reader.feed(raw)
    return rec.heads[0]


def parse_response(raw: bytes):
    reader, rec = response_reader()
    reader.expect_head_response()
    reader.feed(raw)
    return rec.heads[0]


def test_upstream_head_drops_hop_by_hop_and_adds_forwarding_headers():
    head = parse_request(
        b"GET /p?q HTTP/1.0\r\nHost: shop\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
        b"Keep-Alive: 5\r\nTE: trailers\r\nX-Real-IP: 6.6.6.6\r\nAccept: */*\r\n\r\n"
    )
    out = upstream_request_head(head, HTTP, b"10.0.0.9", b"10.0.0.9", b"/p?q", None)
    assert out == (
        b"GET /p?q HTTP/1.1\r\nHost: shop\r\nAccept: */*"
        b"\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop"
        b"\r\nX-Real-IP: 10.0.0.9\r\nVia: 1.1 bascule\r\n\r\n"
    )


def test_upstream_head_appends_to_x_forwarded_for_and_via_and_replaces_host():
    head = parse_request(
        b"POST / HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 1.1.1.1\r\nVia: 1.0 edge\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    out = upstream_request_head(
        head, HTTP, b"2.2.2.2", b"2.2.2.2", b"/new", b"10.0.0.1:80", b"\r\nX-Env: prod"
    )
    assert out == (
        b"POST /new HTTP/1.1\r\nHost: 10.0.0.1:80\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2"
        b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\nX-Real-IP: 2.2.2.2"
        b"\r\nVia: 1.0 edge, 1.1 bascule\r\nTransfer-Encoding: chunked\r\nX-Env: prod\r\n\r\n"
    )


def test_upstream_head_keeps_upgrade_for_an_upgrade_request_and_applies_remove():
    head = parse_request(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"X-Debug: 1\r\n\r\n"
    )
    out = upstream_request_head(
        head, HTTP, b"1.2.3.4", b"1.2.3.4", b"/ws", None, remove=names_pattern([b"x-debug"])
    )
    assert b"X-Debug" not in out
    assert out.endswith(b"\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert out.count(b"Upgrade:") == 1


def test_downstream_head_rechunks_and_drops_hop_by_hop():
    head = parse_response(
        b"HTTP/1.0 200 OK\r\nServer: s\r\nConnection: close\r\nKeep-Alive: 5\r\n\r\n"
    )
    out = downstream_response_head(head, chunked=True, close=False, keep_alive_1_0=False)
    assert out == (
        b"HTTP/1.1 200 OK\r\nServer: s\r\nVia: 1.1 bascule\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def test_downstream_head_says_close_or_keep_alive_for_the_client():
    head = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    closing = downstream_response_head(head, chunked=False, close=True, keep_alive_1_0=False)
    kept = downstream_response_head(
        head,
        chunked=False,
        close=False,
        keep_alive_1_0=True,
        added=b"\r\nX-A: 1",
        remove=names_pattern([b"content-length"]),
    )
    assert closing == (
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nVia: 1.1 bascule\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert kept == (
        b"HTTP/1.1 404 Not Found\r\nVia: 1.1 bascule\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n"
    )


def test_downstream_head_for_101_keeps_the_upgrade():
    head = parse_response(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: abc\r\n\r\n"
    )
    out = downstream_response_head(head, chunked=False, close=True, keep_alive_1_0=False)
    assert out == (
        b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\nVia: 1.1 bascule"
        b"\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )


def test_behind_a_trusted_proxy_the_peer_joins_the_chain_and_the_client_is_the_real_ip():
    head = parse_request(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 7.7.7.7\r\n\r\n")
    out = upstream_request_head(head, HTTP, b"10.0.0.2", b"7.7.7.7", b"/", None)
    assert b"\r\nX-Forwarded-For: 7.7.7.7, 10.0.0.2\r\n" in out
    assert b"\r\nX-Real-IP: 7.7.7.7\r\n" in out
