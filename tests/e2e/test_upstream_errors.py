"""When the target fails: the status, a body naming what happened, the log's error_source;
and once the response has started, a close that never looks like a complete response."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from e2e.backends import (
    broken_body,
    close_without_response,
    fixed,
    refused_port,
    silent,
)
from e2e.proxy import config
from e2e.wire import Wire

GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"


def test_target_refusing_is_502_from_upstream(bascule):
    port = refused_port()
    proxy = bascule(config(port))
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 502
    assert b"connecting to target 127.0.0.1:%d failed" % port in response.body
    log = proxy.last_log()
    assert (log["status"], log["error_source"]) == (502, "upstream")


@pytest.fixture
def unaccepting_port():
    """A listener with backlog 0 whose queue is already full: loopback SYNs go unanswered,
    so a connect neither succeeds nor is refused."""
    with socket.socket() as listener, socket.socket() as filler, socket.socket() as probe:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        probe.settimeout(0.2)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            yield port
            return
        pytest.skip("this kernel accepts past a full backlog; cannot provoke a connect timeout")


def test_connect_timeout_is_504(bascule, unaccepting_port):
    proxy = bascule(config(unaccepting_port, upstream={"timeouts": {"connect": "300ms"}}))
    started = time.monotonic()
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 504
    assert b"timed out" in response.body
    assert 0.25 < time.monotonic() - started < 3
    assert proxy.last_log()["error_source"] == "upstream"


def test_read_timeout_is_504(backend, bascule):
    proxy = bascule(config(backend(silent, raw=True), upstream={"timeouts": {"read": "300ms"}}))
    started = time.monotonic()
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 504
    assert b"target stopped responding" in response.body
    assert 0.25 < time.monotonic() - started < 3
    assert proxy.last_log()["error_source"] == "upstream"


def test_target_that_stops_reading_the_body_hits_send_timeout(backend, bascule):
    async def deaf(backend, reader, writer):
        await asyncio.sleep(5)  # accepts, never reads: the request body backs up

    timeouts = {"send": "300ms", "read": "30s"}  # only the send timeout can explain a 504
    proxy = bascule(config(backend(deaf, raw=True), upstream={"timeouts": timeouts}))
    size = 64 * 1024 * 1024  # far more than loopback socket buffers hold, under the body limit
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.settimeout(10)
    head = b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size

    def upload():
        with contextlib.suppress(OSError):  # Bascule closes on us once it has answered
            sock.sendall(head)
            piece = b"x" * (1024 * 1024)
            for _ in range(size // len(piece)):
                sock.sendall(piece)

    sender = threading.Thread(target=upload, daemon=True)
    started = time.monotonic()
    sender.start()
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(timeout=5)
    assert answer.startswith(b"HTTP/1.1 504 ")
    assert elapsed < 5
    assert proxy.last_log()["error"].startswith("target stopped reading the request")


def test_upstream_close_before_response_is_502(backend, bascule):
    proxy = bascule(config(backend(close_without_response)))
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 502
    assert b"closed the connection before responding" in response.body
    assert proxy.last_log()["error_source"] == "upstream"


def test_invalid_upstream_response_is_502(backend, bascule):
    async def garbage(request, writer):
        writer.write(b"HTTP/1.1 2xx Nope\r\n\r\n")
        return False

    proxy = bascule(config(backend(garbage)))
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 502
    assert b"invalid response" in response.body


def test_invalid_bytes_mid_body_send_what_was_valid_then_close(backend, bascule):
    async def corrupt(request, writer):
        # a valid head and first chunk, then a chunk size that is not hex, in one write
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        return False

    proxy = bascule(config(backend(corrupt)))
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 200
    assert response.body == b"hello"
    assert not response.terminal_chunk  # cut short, and visibly so
    log = proxy.last_log()
    assert log["error_source"] == "upstream"
    assert "invalid response" in log["error"]


def test_upstream_close_mid_body_closes_client_without_terminal_chunk(backend, bascule):
    proxy = bascule(config(backend(broken_body("chunked"))))
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.status == 200
    assert response.chunked
    assert response.body == b"x" * 10
    assert not response.terminal_chunk
    log = proxy.last_log()
    assert log["error_source"] == "upstream"


def test_upstream_close_mid_body_leaves_content_length_response_short(backend, bascule):
    proxy = bascule(config(backend(broken_body("length"))))
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert response.header("content-length") == "100"
    assert response.body == b"x" * 10
    assert not response.complete


def test_upstream_stall_mid_body_hits_read_timeout_and_closes_client(backend, bascule):
    proxy = bascule(
        config(backend(broken_body("chunked", stall=10)), upstream={"timeouts": {"read": "300ms"}})
    )
    started = time.monotonic()
    with Wire(proxy.port) as wire:
        response = wire.request(GET)
    assert not response.terminal_chunk
    assert response.body == b"x" * 10
    assert time.monotonic() - started < 3
    assert proxy.last_log()["error"] == "target stopped sending the rest of the response for 0.3s"


def test_pooled_connection_closed_by_target_is_not_reused(backend, backend_loop, bascule):
    server = backend(fixed())
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        assert wire.request(GET).status == 200
    backend_loop.close_connections(server)  # the target's idle timeout, say
    with Wire(proxy.port) as wire:
        assert wire.request(GET).status == 200
    assert server.connections == 2


def test_request_on_stale_pooled_connection_is_retried_on_a_fresh_one(backend, bascule):
    """The target drops a reused connection on receiving the request (its keep-alive ended
    as the request arrived): a bodyless request is sent again on a new connection."""
    served = set()

    async def once_per_connection(request, writer):
        if writer in served:
            return False  # close without a response
        served.add(writer)
        return await fixed()(request, writer)

    server = backend(once_per_connection)
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        assert wire.request(GET).status == 200
        assert wire.request(GET).status == 200
        response = wire.request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
    assert response.status == 502  # a request with a body is never replayed
    # the GET went out twice (stale connection, then a new one); the POST once
    assert [r.method for r in server.requests] == ["GET", "GET", "GET", "POST"]
    assert server.connections == 2
