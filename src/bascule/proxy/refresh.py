"""Background revalidation for stale-while-revalidate: one request to a target on behalf of
the cache, with no client waiting for it.

The client that found the stale response has been answered already. This asks a target of
the route's upstream whether the stored response still holds (If-None-Match /
If-Modified-Since, on a new connection closed after), with the request headers its Vary
names, and gives the answer to the cache as any other answer: a 304 refreshes the stored
response, a new storable response replaces it. One refresh per key at a time; a failure is
logged and changes nothing (the next request past the window revalidates in the
foreground).
"""

from __future__ import annotations

import asyncio
import logging

from bascule.balancing import PickContext
from bascule.filters.cache import CacheExchange, HttpCache, Lookup, Outcome
from bascule.http.codec import ResponseReader
from bascule.http.errors import HttpError
from bascule.http.forwarding import VIA
from bascule.http.head import RequestHead, ResponseHead
from bascule.proxy.exchange import Exchange
from bascule.upstream.probe import fresh_connection

__all__ = ["REFRESH_TIMEOUT", "refresh"]

log = logging.getLogger("bascule.cache")

REFRESH_TIMEOUT = 30.0  # seconds a background revalidation may take in all
READ_SIZE = 64 * 1024


class _Reply:
    """Hands a target's answer to the cache as the codec reads it."""

    def __init__(self, state: CacheExchange) -> None:
        self.state = state
        self.status = 0
        self.done = False

    def on_informational(self, head: ResponseHead) -> None:
        pass

    def on_response_head(self, head: ResponseHead) -> None:
        self.status = head.status
        self.state.on_response_head(head)

    def on_response_body(self, chunk: bytes) -> None:
        if self.state.pending is not None:
            self.state.on_body(chunk)

    def on_response_end(self) -> None:
        self.state.on_end()
        self.done = True


async def refresh(cache: HttpCache, lookup: Lookup, ex: Exchange, scheme: bytes) -> None:
    """Revalidate the stale response `lookup` found for `ex`'s request."""
    key = lookup.key
    cache.refreshing.add(key)
    try:
        async with asyncio.timeout(REFRESH_TIMEOUT):
            status = await _revalidate(cache, lookup, ex, scheme)
        log.debug("cache: %s revalidated in the background: %s", key, status)
    except (OSError, TimeoutError, HttpError) as exc:
        log.warning("cache: background revalidation of %s failed: %s", key, exc or "timeout")
    finally:
        cache.refreshing.discard(key)


async def _revalidate(cache: HttpCache, lookup: Lookup, ex: Exchange, scheme: bytes) -> int:
    plan, entry, client = ex.plan, lookup.entry, ex.head
    assert plan is not None and plan.upstream is not None and entry is not None
    target = plan.upstream.pick(PickContext(b"-"))
    if target is None:
        raise OSError(f"no target of upstream '{plan.upstream.name}' is available")
    path = client.target
    if plan.rewrite is not None:
        rewritten = plan.rewrite.apply(client.path)
        path = rewritten + b"?" + client.query if client.query else rewritten
    host = client.host if plan.preserve_host and client.host else target.address
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: " + host]
    lines += [name + b": " + value for name, value in entry.vary if value is not None]
    if entry.etag is not None:
        lines.append(b"If-None-Match: " + entry.etag)
    elif entry.last_modified is not None:
        lines.append(b"If-Modified-Since: " + entry.last_modified)
    lines += [b"Via: " + VIA, b"Connection: close"]
    raw = b"\r\n".join(lines) + b"\r\n\r\n"
    request = RequestHead(raw, "1.1", b"GET", path)
    state = CacheExchange(
        cache,
        Lookup(Outcome.VALIDATE, key=lookup.key, status=b"", entry=entry, fields=lookup.fields),
        request,
        scheme,
    )
    reply = _Reply(state)
    reader = ResponseReader(reply, 64 * 1024)
    stream, writer = await fresh_connection(target, tls=True)
    try:
        writer.write(raw)
        while not reply.done:
            data = await stream.read(READ_SIZE)
            if not data:
                if not reader.eof():
                    raise OSError("the target closed the connection before the response ended")
                break
            reader.feed(data)
    finally:
        writer.transport.abort()
    return reply.status
