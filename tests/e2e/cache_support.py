"""An origin for the cache tests, and the requests they send."""

from __future__ import annotations

import asyncio

from e2e.backends import Request, head_bytes
from e2e.wire import Response, Wire


class Origin:
    """A target whose answer the test sets; it answers 304 to a matching If-None-Match."""

    def __init__(self, *headers: tuple[str, str], body: bytes = b"version 1") -> None:
        self.headers = list(headers)
        self.body = body
        self.delay = 0.0
        self.status = 200  # answered instead, when not 200 (a failing origin)
        self.seen: list[Request] = []

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        self.seen.append(request)
        await asyncio.sleep(self.delay)
        etag = dict((k.lower(), v) for k, v in self.headers).get("etag")
        if self.status != 200:
            writer.write(head_bytes(self.status, [("Content-Length", "4")]) + b"oops")
        elif etag is not None and request.header("if-none-match") == etag:
            writer.write(head_bytes(304, self.headers))
        else:
            headers = [*self.headers, ("Content-Length", str(len(self.body)))]
            writer.write(
                head_bytes(200, headers) + (b"" if request.method == "HEAD" else self.body)
            )
        await writer.drain()
        return True


def get(port: int, path: str = "/page", *lines: str, method: str = "GET") -> Response:
    head = "\r\n".join([f"{method} {path} HTTP/1.1", "Host: shop.test", *lines]) + "\r\n\r\n"
    with Wire(port) as wire:
        return wire.request(head.encode(), head=method == "HEAD")


def cache_status(response: Response) -> str:
    return response.header("cache-status") or ""
