"""A client that hangs up mid-exchange: the target connection is discarded, nothing leaks."""

from __future__ import annotations

import asyncio
import socket
import struct

from e2e.backends import fixed, head_bytes
from e2e.proxy import config, fd_count, wait_until
from e2e.wire import Wire


async def endless(request, writer):
    """A chunked response that never ends: a piece every 10 ms until the proxy lets go."""
    writer.write(head_bytes(200, [("Transfer-Encoding", "chunked")]))
    while True:
        writer.write(b"400\r\n" + b"e" * 1024 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)


def hang_up(port: int, *, reset: bool) -> None:
    """Ask, read the first bytes of the response, and leave (RST if `reset`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_client_gone_mid_response_discards_upstream_connection(backend, bascule):
    server = backend(endless)
    proxy = bascule(config(server))
    hang_up(proxy.port, reset=False)
    assert wait_until(lambda: server.closed_by_peer == 1), "the target connection stayed open"
    log = proxy.last_log()
    assert (log["status"], log["error_source"]) == (200, "downstream")
    with Wire(proxy.port) as wire:  # and the next client gets a fresh connection that works
        wire.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert wire.file.readline().startswith(b"HTTP/1.1 200")
    assert server.connections == 2


def test_client_gone_before_response_discards_upstream_connection(backend, bascule):
    async def slow(request, writer):
        await asyncio.sleep(0.3)
        return await fixed()(request, writer)

    server = backend(slow)
    proxy = bascule(config(server))
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert wait_until(lambda: len(server.requests) == 1)
    assert wait_until(lambda: proxy.log_lines() != [])
    log = proxy.last_log()
    assert (log["status"], log["error_source"]) == (499, "downstream")
    with Wire(proxy.port) as wire:
        assert wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
    assert server.connections == 2  # the abandoned connection was not pooled


def test_burst_of_aborted_exchanges_leaks_no_fds_or_tasks(backend, bascule):
    server = backend(endless)
    proxy = bascule(config(server))
    hang_up(proxy.port, reset=True)  # warm up: lazy imports, the log file, timers
    assert wait_until(lambda: server.closed_by_peer == 1)
    fds, tasks = fd_count(), proxy.task_count()
    for i in range(30):
        hang_up(proxy.port, reset=i % 2 == 0)
    assert wait_until(lambda: server.closed_by_peer == 31), server.closed_by_peer
    assert wait_until(lambda: fd_count() <= fds), (fd_count(), fds)
    assert wait_until(lambda: proxy.task_count() <= tasks), (proxy.task_count(), tasks)
