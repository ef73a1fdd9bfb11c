"""Raw TCP backends and clients for the tcp listener tests: targets that echo, record what
reaches them, answer after the client's FIN, or speak TLS with a certificate of their own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from e2e.backends import Backend, BackendLoop, Handler


def tcp_config(
    *targets: Backend | int | str,
    listener: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
    upstreams: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """One tcp listener piping to upstream `app` over `targets` (or to `upstreams`)."""
    if upstreams is None:
        upstreams = {"app": {"targets": [{"address": address(t)} for t in targets]}}
        upstreams["app"].update(upstream or {})
    return {
        "drain_timeout": "1s",
        "listeners": [
            {
                "name": "tcp",
                "bind": "127.0.0.1:1",
                "protocol": "tcp",
                "upstream": "app",
                **(listener or {}),
            }
        ],
        "upstreams": upstreams,
        **top,
    }


def address(target: Backend | int | str) -> str:
    if isinstance(target, Backend):
        return target.address
    if isinstance(target, int):
        return f"127.0.0.1:{target}"
    return target


# -- targets -------------------------------------------------------------------------------


async def echo(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
    """Send back every byte; at the client's FIN, send a FIN too."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()


async def answer_after_eof(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
    """Read until the client's FIN, then answer how many bytes came (and close)."""
    total = 0
    while data := await reader.read(65536):
        total += len(data)
    writer.write(b"got %d bytes" % total)
    await writer.drain()


@dataclass
class Recorder:
    """A target that keeps every byte each connection sent it (a PROXY header included)."""

    received: list[bytes] = field(default_factory=list)
    greeting: bytes = b""  # sent on connect, then a FIN: the target's side is done first

    async def __call__(
        self, backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.greeting:
            writer.write(self.greeting)
            writer.write_eof()
            await writer.drain()
        index = len(self.received)
        self.received.append(b"")
        while data := await reader.read(65536):
            self.received[index] += data


def flood(total: int, written: list[int]) -> Handler:
    """Write `total` bytes as fast as the connection takes them, counting in `written`."""
    block = b"f" * 65536

    async def handler(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
        written.append(0)
        left = total
        while left:
            piece = block[: min(left, len(block))]
            writer.write(piece)
            await writer.drain()
            written[-1] += len(piece)
            left -= len(piece)

    return handler


def named_tls(name: bytes) -> Handler:
    """After the TLS handshake, answer the backend's name to any line."""

    async def handler(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
        await reader.readline()
        writer.write(name + b"\n")
        await writer.drain()

    return handler


def start_tls(loop: BackendLoop, handler: Handler, context: ssl.SSLContext) -> Backend:
    """Serve `handler` over TLS on a free loopback port (stop it with `loop.stop`)."""
    return loop.start(handler, ssl=context)


def unresponsive_port() -> tuple[int, list[socket.socket]]:
    """A loopback port whose accept queue is full, so a new connection is never accepted
    (the kernel drops the SYN): a connect there times out. Close the sockets when done."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = [server]
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        held.append(filler)
    return port, held


# -- clients -------------------------------------------------------------------------------


def connect(port: int, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the peer's FIN (or a reset: what came before it)."""
    parts = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        parts.append(data)
    return b"".join(parts)


def closed_at_once(sock: socket.socket, timeout: float = 1.0) -> bool:
    """True if the peer closes (FIN or reset) within `timeout` without sending anything."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
