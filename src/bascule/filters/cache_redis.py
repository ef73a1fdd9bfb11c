"""The shared cache store: Redis, seen by every worker of every Bascule node that names it.

Layout, under the configured prefix (`bascule:` by default):

- `<prefix>k:<cache key>`: a hash, one field per variant (a digest of its Vary values),
  each holding `<chunks>|<JSON length>|<JSON><body>`: the variant's status, headers and
  freshness (`Entry.record`), then its body when it fits in `INLINE` bytes (chunks 0),
  so that most hits cost one round trip;
- `<prefix>b:<variant digest>:<n>`: a larger body in chunks of `CHUNK` bytes, so a large
  body is never one huge Redis value.

Every key expires with its entry: the response's freshness lifetime plus its
stale-while-revalidate / stale-if-error windows, plus `REVALIDATE_GRACE` when it has a
validator (a stale entry with an ETag still saves a body transfer). Times inside entries
are wall-clock, so nodes share them (keep their clocks in sync, as HTTP caches must).

Redis down or slow never fails a request: a read that errs or takes longer than `timeout`
is a miss, writes are dropped, the cache is bypassed for `BACKOFF` seconds, and a warning
is logged at most once per `WARN_EVERY` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bascule.filters.cache_store import Entry

__all__ = ["CHUNK", "REVALIDATE_GRACE", "RedisStore"]

log = logging.getLogger("bascule.cache")

CHUNK = 256 * 1024
INLINE = 64 * 1024
DECODED_KEPT = 1024  # variants whose decoded entry is kept
REVALIDATE_GRACE = 3600  # seconds a stale entry with a validator is kept to revalidate
BACKOFF = 1.0  # seconds the cache is bypassed after Redis failed
WARN_EVERY = 10.0  # seconds between two warnings about Redis

T = TypeVar("T")


def _variant(key: str, entry: Entry) -> str:
    vary = "\0".join(f"{n.decode('latin-1')}={(v or b'').decode('latin-1')}" for n, v in entry.vary)
    return hashlib.blake2b(f"{key}\0{vary}".encode(), digest_size=12).hexdigest()


def _ttl(entry: Entry) -> int:
    """Seconds Redis keeps an entry (module docstring)."""
    f = entry.freshness
    left = f.lifetime - f.current_age(time.time())
    windows = max(entry.stale_while_revalidate, entry.stale_if_error)
    grace = REVALIDATE_GRACE if entry.etag or entry.last_modified else 0
    return max(1, math.ceil(left + windows + grace))


class RedisStore:
    shared = True

    def __init__(self, url: str, prefix: str, timeout: float) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._client: aioredis.Redis | None = None
        self._down_until = 0.0
        self._warned_at = -math.inf
        self._writes: set[asyncio.Task[None]] = set()
        # the last entry decoded per variant, with the value it came from: a hot key's
        # JSON and dates are read once, not at every hit
        self._decoded: dict[bytes, tuple[bytes, Entry]] = {}

    def _redis(self) -> aioredis.Redis:
        if self._client is None:  # made in the worker, on its loop, at first use
            # reads and writes are bounded by `_guarded`'s timeout; a second one per socket
            # operation inside redis-py would only cost time
            self._client = aioredis.Redis.from_url(self.url, socket_connect_timeout=self.timeout)
        return self._client

    def _meta(self, key: str) -> str:
        return f"{self.prefix}k:{key}"

    def _chunk(self, variant: str, index: int) -> str:
        return f"{self.prefix}b:{variant}:{index}"

    async def _guarded(self, what: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """`call()`, or `fallback` while Redis is failing or if it fails now."""
        now = time.monotonic()
        if now < self._down_until:
            return fallback
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + BACKOFF
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "cache: Redis at %s failed (%s: %s); the cache is bypassed until it answers",
                    self.url,
                    what,
                    exc or "timed out",
                )
            return fallback

    async def fetch(self, key: str) -> list[Entry]:
        async def read() -> list[Entry]:
            client = self._redis()
            records = cast(dict[bytes, bytes], await client.hgetall(self._meta(key)))
            if not records:
                return []
            entries: list[Entry] = []
            chunked: list[tuple[int, bytes, bytes]] = []  # chunks, JSON, variant
            names: list[str] = []
            for variant, value in records.items():
                known = self._decoded.get(variant)
                if known is not None and known[0] == value:
                    entries.append(known[1])
                    continue
                count, length, rest = value.split(b"|", 2)
                chunks, size = int(count), int(length)
                if chunks:
                    chunked.append((chunks, rest[:size], variant))
                    names += [self._chunk(variant.decode(), i) for i in range(chunks)]
                    continue
                entry = self._decode(rest[:size], rest[size:])
                if entry is not None:
                    self._remember(variant, value, entry)
                    entries.append(entry)
            bodies = cast(list[bytes | None], await client.mget(names)) if names else []
            at = 0
            for chunks, record, _ in chunked:
                parts = [part for part in bodies[at : at + chunks] if part is not None]
                at += chunks
                if len(parts) == chunks:  # else a chunk expired: the variant is gone
                    entry = self._decode(record, b"".join(parts))
                    if entry is not None:
                        entries.append(entry)
            return entries

        return await self._guarded("read", read, [])

    def _decode(self, record: bytes, body: bytes) -> Entry | None:
        try:
            return Entry.from_record(record, body)
        except ValueError:
            return None  # not written by this version: a miss, overwritten when stored

    def _remember(self, variant: bytes, value: bytes, entry: Entry) -> None:
        if len(self._decoded) >= DECODED_KEPT:
            self._decoded.clear()
        self._decoded[variant] = (value, entry)

    def put(self, key: str, entry: Entry) -> None:
        async def write() -> None:
            variant, ttl = _variant(key, entry), _ttl(entry)
            body = entry.body
            pipe = self._redis().pipeline(transaction=False)
            chunks = 0 if len(body) <= INLINE else math.ceil(len(body) / CHUNK)
            for index in range(chunks):
                piece = body[index * CHUNK : (index + 1) * CHUNK]
                pipe.set(self._chunk(variant, index), piece, ex=ttl)
            record = entry.record().encode()
            value = b"%d|%d|%b%b" % (chunks, len(record), record, body if chunks == 0 else b"")
            pipe.hset(self._meta(key), variant, value)
            pipe.expire(self._meta(key), ttl)
            await pipe.execute()

        self._background("write", write)

    def delete(self, key: str) -> None:
        async def remove() -> None:
            await self._redis().delete(self._meta(key))  # chunks expire on their own

        self._background("delete", remove)

    async def purge(self, prefix: str) -> int:
        async def scan() -> int:
            client, deleted = self._redis(), 0
            pattern = self._meta(_glob_escape(prefix)) + "*"
            async for name in client.scan_iter(match=pattern, count=500):
                deleted += await client.delete(name)
            return deleted

        return await self._guarded("purge", scan, 0)

    def _background(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(what, call, None))
        self._writes.add(task)  # a reference, so the task is not collected mid-write
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
