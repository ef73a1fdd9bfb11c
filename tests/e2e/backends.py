"""Backends for end-to-end tests: real servers on 127.0.0.1 that misbehave on purpose.

All backends share one asyncio loop in one thread (`BackendLoop`). A backend is a
connection handler `async (backend, reader, writer)`; `http(respond)` turns a per-request
responder `async (request, writer) -> keep_alive` into one, reading requests with a parser
of its own (never Bascule's codec, which is what is under test).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl as ssl_module
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[["Backend", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Responder = Callable[["Request", asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class Backend:
    port: int = 0
    connections: int = 0  # accepted so far
    closed_by_peer: int = 0  # connections the proxy closed while the handler still ran
    requests: list[Request] = field(default_factory=list)
    received: asyncio.Event | None = None  # set when a request head arrives
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class BackendLoop:
    """One thread running an asyncio loop that every backend of the session lives on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: ssl_module.SSLContext | None = None,
    ) -> Backend:
        """Serve `handler` on host:port (port 0: one the kernel picks), over TLS if `ssl`."""
        backend = Backend()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            backend.connections += 1
            backend.writers.add(writer)
            try:
                await handler(backend, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl_module.SSLError):
                backend.closed_by_peer += 1
            finally:
                backend.writers.discard(writer)
                writer.close()

        async def start() -> None:
            backend.received = asyncio.Event()
            backend.server = await asyncio.start_server(on_connect, host, port, ssl=ssl)
            backend.port = backend.server.sockets[0].getsockname()[1]

        self.call(start())
        return backend

    def stop(self, backend: Backend) -> None:
        async def stop() -> None:
            server = backend.server
            assert server is not None
            # Stop accepting, then let the connections accepted already get their transports
            # before the server closes: on Python 3.11 a transport made for a closed server
            # fails an assert in Server._attach, silently (outside debug mode), leaving its
            # accepted socket to the garbage collector and a ResourceWarning in a later test.
            # Their tasks are queued already: one turn of the loop runs them.
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
            await asyncio.sleep(0)
            server.close()
            for writer in list(backend.writers):
                writer.transport.abort()
            await asyncio.sleep(0)

        self.call(stop())

    def close_connections(self, backend: Backend) -> None:
        """Close the backend's open connections gracefully (FIN), as an idle timeout would."""

        async def close() -> None:
            for writer in list(backend.writers):
                writer.close()
            await asyncio.sleep(0.05)

        self.call(close())

    def close(self) -> None:
        async def cancel_handlers() -> None:
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(cancel_handlers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


# -- reading requests ----------------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> Request | None:
    """The next request head, or None if the connection closed between requests."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = raw[:-4].decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    return Request(method, path, version, headers)


async def read_body(reader: asyncio.StreamReader, request: Request) -> bytes:
    if (request.header("transfer-encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(request.header("content-length") or 0)
    return await reader.readexactly(length)


def http(respond: Responder, *, read_bodies: bool = True) -> Handler:
    """A keep-alive HTTP/1.1 server: every request goes to `respond` until it says close."""

    async def handler(
        backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            request = await read_head(reader)
            if request is None:
                return
            backend.requests.append(request)
            assert backend.received is not None
            backend.received.set()
            if read_bodies:
                request.body = await read_body(reader, request)
            if not await respond(request, writer):
                return

    return handler


# -- writing responses ---------------------------------------------------------------------


def head_bytes(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def fixed(
    status: int = 200,
    body: bytes = b"hello",
    headers: tuple[tuple[str, str], ...] = (),
    framing: str = "length",
) -> Responder:
    """A response framed by `length`, `chunked` (3 chunks, an extension and a trailer) or
    `close` (no length: the body ends when the connection does)."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        extra = list(headers)
        bodyless = request.method == "HEAD" or status in (204, 304)
        if framing == "length":
            out = head_bytes(status, [*extra, ("Content-Length", str(len(body)))])
            out += b"" if bodyless else body
        elif framing == "chunked":
            out = head_bytes(status, [*extra, ("Transfer-Encoding", "chunked")])
            third = len(body) // 3
            parts = [body[:third], body[third : 2 * third], body[2 * third :]]
            out += b"".join(chunk(p) for p in parts if p) + b"0;ext=1\r\nX-Trailer: t\r\n\r\n"
        else:
            out = head_bytes(status, extra) + (b"" if bodyless else body)
        writer.write(out)
        await writer.drain()
        return framing != "close"

    return respond


async def echo(request: Request, writer: asyncio.StreamWriter) -> bool:
    """Answer with the request as JSON: method, path, version, headers, body length and hash."""
    body = json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "version": request.version,
            "headers": request.headers,
            "body_length": len(request.body),
            "body_sha256": hashlib.sha256(request.body).hexdigest(),
        }
    ).encode()
    writer.write(
        head_bytes(200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        + body
    )
    await writer.drain()
    return True


def named(name: str, delay: float = 0.0, loads: dict[str, int] | None = None) -> Responder:
    """Answers its name after `delay`, reporting `loads[name]` in X-Server-Load if given."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(delay)
        headers = (("X-Server-Load", str(loads[name])),) if loads is not None else ()
        return await fixed(body=name.encode(), headers=headers)(request, writer)

    return respond


def slow_head(delay: float, body: bytes = b"slow") -> Responder:
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(delay)
        return await fixed(body=body)(request, writer)

    return respond


def broken_body(framing: str, *, stall: float = 0.0) -> Responder:
    """Send a head promising 100 bytes and 10 of them; then stall (`stall` s) or close."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        if framing == "chunked":
            writer.write(head_bytes(200, [("Transfer-Encoding", "chunked")]) + chunk(b"x" * 10))
        else:
            writer.write(head_bytes(200, [("Content-Length", "100")]) + b"x" * 10)
        await writer.drain()
        await asyncio.sleep(stall)
        return False

    return respond


async def close_without_response(request: Request, writer: asyncio.StreamWriter) -> bool:
    return False


def streaming(total: int, piece: int = 256 * 1024) -> Responder:
    """A Content-Length body of `total` bytes written piece by piece with backpressure."""
    block = b"b" * piece

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head_bytes(200, [("Content-Length", str(total))]))
        left = total
        while left:
            n = min(left, piece)
            writer.write(block if n == piece else block[:n])
            left -= n
            await writer.drain()
        return True

    return respond


async def continue_aware(
    backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer `Expect: 100-continue` with 100 before reading the body, then echo."""
    while (request := await read_head(reader)) is not None:
        backend.requests.append(request)
        if (request.header("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        request.body = await read_body(reader, request)
        await echo(request, writer)


async def silent(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
    """Accept, read whatever comes, never answer."""
    while await reader.read(65536):
        pass


def refused_port() -> int:
    """A loopback port with nothing listening (bound then closed: the kernel refuses it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_check(every: float, **overrides: Any) -> dict[str, Any]:
    """An upstream's `health:` for a `Service`: every `every` s, no jitter, 2 in a row."""
    return {
        "http": {"path": "/healthz"},
        "interval": f"{every * 1000:g}ms",
        "timeout": "1s",
        "jitter": "0%",
        "healthy": 2,
        "unhealthy": 2,
        **overrides,
    }


class Service:
    """A target whose health endpoint and application answers the test switches."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.health = 200
        self.health_body = b"ok"
        self.health_headers: tuple[tuple[str, str], ...] = ()
        self.health_delay = 0.0  # seconds before the health endpoint answers

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.path.startswith("/healthz"):
            await asyncio.sleep(self.health_delay)
            return await fixed(self.health, self.health_body, self.health_headers)(request, writer)
        return await fixed(200, self.name.encode())(request, writer)


def served(backend: Backend) -> list[Request]:
    """The requests clients sent through Bascule (not its health checks)."""
    return [r for r in backend.requests if not r.path.startswith("/healthz")]


def checks(backend: Backend) -> list[Request]:
    return [r for r in backend.requests if r.path.startswith("/healthz")]
