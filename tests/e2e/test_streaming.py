"""Streaming with backpressure both ways: a slow reader or a slow target never makes
Bascule buffer the body. Everything runs in this process, so RSS bounds all of it."""

from __future__ import annotations

import asyncio
import ctypes
import socket
import threading
import time

from e2e.backends import echo, head_bytes, read_head, streaming
from e2e.proxy import config

MIB = 1024 * 1024
GIB = 1024 * MIB
RSS_BOUND = 100 * MIB


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def settled_rss() -> int:
    """RSS after handing freed heap back to the OS, so memory an earlier test freed but
    the allocator kept cannot hide this test's growth."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss()


def test_1gib_response_to_slow_reader_is_not_buffered(backend, bascule):
    """1 GiB: the first 64 MiB read slowly (~1 ms per 64 KiB read, so the target could
    outrun the client by hundreds of MiB), the rest as fast as possible; RSS sampled
    throughout must stay within 100 MiB of the start."""
    proxy = bascule(config(backend(streaming(GIB))))
    start = settled_rss()
    peak = start
    received = 0
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        head, _, first = head.partition(b"\r\n\r\n")
        assert b"Content-Length: %d" % GIB in head
        received = len(first)
        buf = bytearray(1024 * 1024)
        while received < GIB:
            slow = received < 64 * MIB
            n = sock.recv_into(buf, 64 * 1024 if slow else len(buf))
            assert n, f"closed after {received} bytes"
            received += n
            if slow:
                time.sleep(0.001)
            if received % (8 * MIB) < n:
                peak = max(peak, rss())
    assert received == GIB
    assert peak - start < RSS_BOUND, f"RSS grew by {(peak - start) / MIB:.0f} MiB"


def test_upload_to_slow_target_is_not_buffered(backend, bascule):
    """256 MiB sent as fast as the client can to a target that reads 64 KiB per 2 ms
    for its first 32 MiB: without backpressure Bascule would hold most of the upload."""
    total = 256 * MIB

    async def slow_reader(backend_, reader, writer):
        request = await read_head(reader)
        assert request is not None
        got = 0
        while got < total:
            data = await reader.read(64 * 1024)
            assert data
            got += len(data)
            if got < 32 * MIB:
                await asyncio.sleep(0.002)
        writer.write(head_bytes(200, [("Content-Length", str(len(str(got))))]) + str(got).encode())
        await writer.drain()

    proxy = bascule(
        config(backend(slow_reader, raw=True), listener={"limits": {"max_body_bytes": "1GiB"}})
    )
    start = settled_rss()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
            block = b"u" * MIB
            for _ in range(total // MIB):
                sock.sendall(block)
            response = b""
            while not response.endswith(str(total).encode()):
                data = sock.recv(4096)
                assert data, response
                response += data
    finally:
        done.set()
        sampler.join()
    assert response.startswith(b"HTTP/1.1 200")
    assert peak[0] - start < RSS_BOUND, f"RSS grew by {(peak[0] - start) / MIB:.0f} MiB"


def test_many_small_requests_keep_memory_flat(backend, bascule):
    """A sanity bound for the per-exchange state: 2000 requests on one connection."""
    proxy = bascule(config(backend(echo)))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        file = sock.makefile("rb")
        start = settled_rss()
        for _ in range(2000):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            while (line := file.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length"):
                    length = int(line.split(b":")[1])
            file.read(length)
        file.close()
    assert rss() - start < 20 * MIB
