"""The `cache:` filter of a route: a shared HTTP cache (RFC 9111) in front of its upstream.

Rules:

1. Only GET responses are stored; HEAD is answered from them. A request with a Range
   header, or any other method, goes to the target (`Cache-Status: ...; fwd=bypass`), and
   a successful unsafe method (POST, PUT, DELETE, PATCH) invalidates the stored responses
   of its URI and of the Location / Content-Location it names on the same host.
2. A stored response answers a request while it is fresh, and the request's directives
   allow it (`no-cache`, `max-age`, `min-fresh`; `max-stale` lets a stale one answer,
   unless the response said `must-revalidate`, `proxy-revalidate` or `no-cache`).
3. A stale response with a validator is revalidated: the request goes to the target with
   If-None-Match / If-Modified-Since; a 304 refreshes the stored headers and the stored
   response answers; anything else replaces it.
4. A miss goes to the target without the client's own conditional headers, so its answer
   is complete and can be stored; a client's conditional request is answered with 304
   from the cache when its validators match.
5. `stale-while-revalidate=N` (RFC 5861): for N seconds past its freshness a response
   answers at once, stale, while one background request revalidates it.
   `stale-if-error=N` (response or request): for N seconds past its freshness a stale
   response answers when the target fails (an error, a timeout, a 5xx).
   `must-revalidate` (and `proxy-revalidate`, `s-maxage`, `no-cache`) forbids both.
6. Concurrent misses for one key send one request: the first goes, the others wait for it
   (at most `collapse_timeout`) and are answered from what it stored, or go themselves.
7. Not stored: what RFC 9111 §3 forbids (`no-store`, `private`, an Authorization request
   without `public` / `s-maxage` / `must-revalidate`, an unknown status), responses with
   `Set-Cookie` (as nginx), `Vary: *`, and bodies over `max_object`, which stream through
   without being held.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bascule.filters.cache_policy import (
    CacheControl,
    Freshness,
    http_date,
    parse_cache_control,
    storable,
)
from bascule.filters.cache_store import Entry, MemoryStore, Store
from bascule.http.head import RequestHead, ResponseHead

__all__ = ["CacheExchange", "HttpCache", "Lookup", "Outcome", "etag_matches"]

_CACHED_METHODS = (b"GET", b"HEAD")
_UNSAFE = frozenset((b"POST", b"PUT", b"DELETE", b"PATCH"))
_NOT_STORED = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
     b"transfer-encoding", b"content-length", b"age", b"via", b"cache-status")
)  # fmt: skip
_HEAD_FIELDS = frozenset(
    (b"cache-control", b"expires", b"date", b"age", b"last-modified", b"etag", b"vary",
     b"set-cookie", b"location", b"content-location")
)  # fmt: skip


class Outcome(enum.Enum):
    HIT = "hit"  # answer from the cache
    VALIDATE = "validate"  # ask the target whether the stored response still holds
    MISS = "miss"  # ask the target; store its answer if it may be
    BYPASS = "bypass"  # the cache has nothing to do with it
    UNAVAILABLE = "unavailable"  # only-if-cached and nothing fits: 504


Fields = dict[bytes, bytes]
"""A request's headers by lower-case name (the last one of a repeated name)."""


@dataclass(slots=True)
class Lookup:
    outcome: Outcome
    key: str
    status: bytes  # the Cache-Status parameters: b"hit", b"fwd=miss", ...
    entry: Entry | None = None  # the stored response it found (fresh or stale)
    fields: Fields = field(default_factory=dict)  # the request's headers, read once
    refresh: bool = False  # answered stale: revalidate in the background (rule 5)


_REQUEST_FIELDS = re.compile(
    rb"\r\n(cache-control|pragma|range|authorization|if-none-match|if-modified-since)"
    rb":[ \t]*([^\r]*?)[ \t]*(?=\r\n)",
    re.IGNORECASE,
)
KEY_CACHE_SIZE = 4096  # keys of recent URLs: hot pages repeat


def request_fields(head: RequestHead) -> Fields:
    """The request headers the cache reads, by lower-case name, in one pass (values as
    sent: ETags are case-sensitive). The headers a Vary names are added by `_select`."""
    return {name.lower(): value for name, value in _REQUEST_FIELDS.findall(head.raw)}


def _fields(lines: list[tuple[bytes, bytes]], wanted: frozenset[bytes]) -> dict[bytes, bytes]:
    """The `wanted` headers (lower-case names), repeated ones joined with commas."""
    found: dict[bytes, bytes] = {}
    for name, value in lines:
        lower = name.lower()
        if lower in wanted:
            seen = found.get(lower)
            found[lower] = seen + b", " + value if seen is not None else value
    return found


def etag_matches(etag: bytes | None, if_none_match: bytes) -> bool:
    """Does If-None-Match name `etag`? (weak comparison, RFC 9110 §13.1.2)"""
    if etag is None:
        return False
    if if_none_match.strip() == b"*":
        return True
    mine = etag.removeprefix(b"W/")
    return any(tag.strip().removeprefix(b"W/") == mine for tag in if_none_match.split(b","))


class HttpCache:
    """One route's cache: its store, its key, and the fetches in flight (rule 6)."""

    def __init__(
        self,
        store: Store,
        *,
        max_object: int,
        key_template: str,
        collapse_timeout: float,
        request_remove: re.Pattern[bytes],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.local = store if isinstance(store, MemoryStore) else None  # read at once
        # request lines not sent upstream: the route's, and the client's validators (rule 4)
        self.request_remove = request_remove
        self.max_object = max_object
        self.key_template = key_template
        self.collapse_timeout = collapse_timeout
        self.clock = clock
        # the misses on their way to the target, by key; each resolves to what it stored
        self.fetching: dict[str, asyncio.Future[Entry | None]] = {}
        self.refreshing: set[str] = set()  # keys revalidated in the background now
        self._keys: dict[tuple[bytes, bytes, bytes], str] = {}

    def key(self, scheme: bytes, host: bytes, target: bytes) -> str:
        known = self._keys.get((scheme, host, target))
        if known is not None:
            return known
        path, _, query = target.partition(b"?")
        key = self.key_template.format(
            scheme=scheme.decode(),
            host=host.decode("latin-1").lower(),
            path=path.decode("latin-1"),
            query="?" + query.decode("latin-1") if query else "",
        )
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[scheme, host, target] = key
        return key

    def lookup(self, head: RequestHead, scheme: bytes) -> Lookup:
        """What to do with a request (rules 1-5), with a local store."""
        assert self.local is not None
        started = self.begin(head, scheme)
        if isinstance(started, Lookup):
            return started
        key, fields = started
        return self.decide(head, key, fields, self.local.get(key))

    def begin(self, head: RequestHead, scheme: bytes) -> Lookup | tuple[str, Fields]:
        """A bypass, decided already; or the key and request headers that `decide` needs
        with the variants stored under the key."""
        key = self.key(scheme, head.host, head.target)
        if head.method not in _CACHED_METHODS:
            return Lookup(Outcome.BYPASS, key, b"fwd=bypass")
        fields = request_fields(head)
        if b"range" in fields:
            return Lookup(Outcome.BYPASS, key, b"fwd=bypass", fields=fields)
        return key, fields

    def decide(self, head: RequestHead, key: str, fields: Fields, variants: list[Entry]) -> Lookup:
        """What to do with a request, given the variants stored under its key."""
        request = _request_directives(fields)
        entry = _select(variants, fields, head)
        if entry is None:
            miss = b"fwd=vary-miss" if variants else b"fwd=uri-miss"
            if request.has("only-if-cached"):
                return Lookup(Outcome.UNAVAILABLE, key, miss, fields=fields)
            return Lookup(Outcome.MISS, key, miss, fields=fields)
        now = self.clock()
        age = entry.freshness.current_age(now)
        ttl = entry.freshness.lifetime - age
        if _acceptable(entry, request, age, ttl):
            return Lookup(Outcome.HIT, key, b"hit; ttl=%d" % int(ttl), entry, fields)
        if _stale_while_revalidate(entry, request, ttl):
            status = b"hit; ttl=%d; detail=stale-while-revalidate" % int(ttl)
            return Lookup(Outcome.HIT, key, status, entry, fields, refresh=True)
        if request.has("only-if-cached"):
            return Lookup(Outcome.UNAVAILABLE, key, b"fwd=stale", fields=fields)
        why = b"fwd=request" if ttl > 0 else b"fwd=stale"
        if entry.etag is None and entry.last_modified is None:
            return Lookup(Outcome.MISS, key, why, entry, fields)
        return Lookup(Outcome.VALIDATE, key, why, entry, fields)

    def invalidate(self, scheme: bytes, request: RequestHead, response: ResponseHead) -> None:
        """A successful unsafe method changed what its URI (and those it names) serve."""
        self.store.delete(self.key(scheme, request.host, request.target))
        fields = _fields(response.headers(), frozenset((b"location", b"content-location")))
        for value in fields.values():
            target = _same_host_target(value, scheme, request.host)
            if target is not None:
                self.store.delete(self.key(scheme, request.host, target))

    async def purge(self, prefix: str) -> int:
        """Delete every stored response whose key starts with `prefix`; how many keys."""
        return await self.store.purge(prefix)

    async def close(self) -> None:
        """Finish the store's writes in flight and let go of its connections."""
        await self.store.close()


def _request_directives(fields: Fields) -> CacheControl:
    directives = parse_cache_control(fields.get(b"cache-control"))
    if not directives.directives and fields.get(b"pragma") == b"no-cache":
        return parse_cache_control(b"no-cache")  # RFC 9111 §5.4, for HTTP/1.0 caches
    return directives


def _select(variants: list[Entry], fields: Fields, head: RequestHead) -> Entry | None:
    """The newest variant the request's headers select (RFC 9111 §4.1). The headers the
    variants' Vary names join `fields`, so that a stored answer records them."""
    for entry in variants:
        for name, _ in entry.vary:
            if name not in fields:
                value = head.header(name)
                if value is not None:
                    fields[name] = value
    for entry in reversed(variants):
        if entry.matches(fields):
            return entry
    return None


def _acceptable(entry: Entry, request: CacheControl, age: float, ttl: float) -> bool:
    """May this stored response answer the request without asking the target (rule 2)?"""
    if request.has("no-cache") or entry.no_cache:
        return False
    max_age = request.seconds("max-age")
    if max_age is not None and age > max_age:
        return False
    min_fresh = request.seconds("min-fresh")
    if min_fresh is not None and ttl < min_fresh:
        return False
    if ttl > 0:
        return True
    if entry.must_revalidate or not request.has("max-stale"):
        return False
    max_stale = request.seconds("max-stale")
    return request.directives["max-stale"] is None or (max_stale is not None and -ttl <= max_stale)


def _stale_while_revalidate(entry: Entry, request: CacheControl, ttl: float) -> bool:
    """May this stale response answer at once, while it is revalidated (rule 5)?"""
    if ttl > 0 or entry.must_revalidate or request.has("no-cache"):
        return False
    if entry.etag is None and entry.last_modified is None:
        return False  # nothing to revalidate with
    return -ttl <= entry.stale_while_revalidate


def _same_host_target(value: bytes, scheme: bytes, host: bytes) -> bytes | None:
    """The path and query a Location-like value names on `host`, or None."""
    value = value.strip()
    if value.startswith(b"/") and not value.startswith(b"//"):
        return value
    prefix = scheme + b"://" + host
    if value.lower().startswith(prefix.lower()):
        rest = value[len(prefix) :]
        return rest if rest.startswith(b"/") else b"/" + rest
    return None


class CacheExchange:
    """The cache's part in one exchange: what the lookup found, and the response being
    recorded for the store."""

    __slots__ = (
        "_parts",
        "_recorded",
        "answered",
        "cache",
        "entry",
        "fetch",
        "lookup",
        "pending",
        "request",
        "request_time",
        "scheme",
    )

    def __init__(self, cache: HttpCache, lookup: Lookup, request: RequestHead, scheme: bytes):
        self.cache = cache
        self.lookup = lookup
        self.request = request
        self.scheme = scheme
        self.request_time = cache.clock()
        self.pending: Entry | None = None  # the response being recorded, head done
        self.entry: Entry | None = None  # stored (or refreshed) once the response ended
        self._parts: list[bytes] = []
        self._recorded = 0
        self.fetch: asyncio.Future[Entry | None] | None = None  # others wait on it (rule 6)
        self.answered = False  # a stored response answered; the target's body is dropped

    def lead(self) -> None:
        """This exchange fetches the key; later misses for it wait (rule 6)."""
        fetching = self.cache.fetching
        if self.lookup.key not in fetching:
            self.fetch = fetching[self.lookup.key] = asyncio.get_running_loop().create_future()

    def release(self) -> None:
        """The exchange is over, however it ended: let the waiters go."""
        fetch = self.fetch
        if fetch is not None:
            self.fetch = None
            if self.cache.fetching.get(self.lookup.key) is fetch:
                del self.cache.fetching[self.lookup.key]
            if not fetch.done():
                fetch.set_result(self.entry)

    def on_response_head(self, response: ResponseHead) -> Entry | None:
        """Decide what the cache does with the target's answer. Returns the stored entry to
        answer with instead (a 304 that validated it, rule 3), else None."""
        request, status = self.request, response.status
        if request.method in _UNSAFE:
            if status < 400:
                self.cache.invalidate(self.scheme, request, response)
            return None
        outcome = self.lookup.outcome
        if outcome is Outcome.BYPASS or request.method != b"GET":
            return None
        now = self.cache.clock()
        lines = response.headers()
        fields = _fields(lines, _HEAD_FIELDS)
        stale = self.lookup.entry
        if status == 304 and outcome is Outcome.VALIDATE and stale is not None:
            refreshed = _refreshed(stale, lines, fields, self.request_time, now)
            self.cache.store.put(self.lookup.key, refreshed)
            self.entry = refreshed
            return refreshed
        self.pending = self._entry(response, lines, fields, now)
        return None

    def _entry(
        self,
        response: ResponseHead,
        lines: list[tuple[bytes, bytes]],
        fields: dict[bytes, bytes],
        now: float,
    ) -> Entry | None:
        """The entry this response will be stored as, or None if it may not be (rule 7)."""
        status = response.status
        directives = parse_cache_control(fields.get(b"cache-control"))
        vary = fields.get(b"vary", b"").lower()
        if (
            b"set-cookie" in fields
            or b"*" in vary
            or (response.content_length or 0) > self.cache.max_object
            or not storable(
                status,
                directives,
                request=_request_directives(self.lookup.fields),
                authorized=b"authorization" in self.lookup.fields,
                has_expires=b"expires" in fields,
                has_validator=b"etag" in fields or b"last-modified" in fields,
            )
        ):
            return None
        names = [n.strip() for n in vary.split(b",") if n.strip()]
        dropped = _NOT_STORED.union(response.extra_hop_by_hop())  # RFC 9111 §3.1
        return Entry(
            status,
            response.raw[8 : response.line_end],
            b"".join(b"\r\n" + n + b": " + v for n, v in lines if n.lower() not in dropped),
            b"",
            _freshness(status, directives, fields, self.request_time, now),
            vary=tuple((name, self._value(name)) for name in names),
            etag=fields.get(b"etag"),
            last_modified=fields.get(b"last-modified"),
            **_serving(directives),
        )

    def stale_for_error(self) -> Entry | None:
        """The stale response that may answer now that the target failed (rule 5)."""
        stale = self.lookup.entry
        if stale is None or stale.must_revalidate:
            return None
        asked = _request_directives(self.lookup.fields).seconds("stale-if-error") or 0
        overdue = -stale.freshness.ttl(self.cache.clock())
        return stale if 0 < overdue <= max(stale.stale_if_error, asked) else None

    def _value(self, name: bytes) -> bytes | None:
        """The request's value of header `name` (lower-case), or None."""
        fields = self.lookup.fields
        return fields[name] if name in fields else self.request.header(name)

    def validators(self) -> bytes:
        """The conditional header lines that revalidate a stale response (rule 3)."""
        stale = self.lookup.entry
        if self.lookup.outcome is not Outcome.VALIDATE or stale is None:
            return b""
        if stale.etag is not None:
            return b"\r\nIf-None-Match: " + stale.etag
        assert stale.last_modified is not None
        return b"\r\nIf-Modified-Since: " + stale.last_modified

    def on_body(self, chunk: bytes) -> None:
        """A piece of the body being recorded; past `max_object` it is let go (rule 7)."""
        self._recorded += len(chunk)
        if self._recorded > self.cache.max_object:
            self.pending = None
            self._parts.clear()
            return
        self._parts.append(chunk)

    def on_end(self) -> None:
        """The response ended complete: store what was recorded."""
        pending = self.pending
        if pending is not None:
            self.pending = None
            pending.body = b"".join(self._parts)
            pending.size += len(pending.body)
            self._parts.clear()
            self.cache.store.put(self.lookup.key, pending)
            self.entry = pending


def _serving(directives: CacheControl) -> dict[str, Any]:
    """What a response's Cache-Control says of serving it later: the `Entry` fields."""
    return {
        "must_revalidate": directives.has("must-revalidate")
        or directives.has("proxy-revalidate")
        or directives.has("no-cache")
        or directives.has("s-maxage"),  # RFC 9111 §5.2.2.10: for shared caches it implies it
        "no_cache": directives.has("no-cache"),
        "stale_while_revalidate": directives.seconds("stale-while-revalidate") or 0,
        "stale_if_error": directives.seconds("stale-if-error") or 0,
    }


def _freshness(
    status: int,
    directives: CacheControl,
    fields: dict[bytes, bytes],
    request_time: float,
    now: float,
) -> Freshness:
    return Freshness.of(
        status=status,
        response=directives,
        date=http_date(fields.get(b"date")),
        expires=fields.get(b"expires"),
        last_modified=http_date(fields.get(b"last-modified")),
        age=fields.get(b"age"),
        request_time=request_time,
        response_time=now,
    )


def _refreshed(
    stale: Entry,
    lines: list[tuple[bytes, bytes]],
    fields: dict[bytes, bytes],
    request_time: float,
    now: float,
) -> Entry:
    """The stored response with the headers a 304 sent replacing its own (RFC 9111 §4.3.4)."""
    updated = {name.lower() for name, _ in lines} - _NOT_STORED
    kept = [(n, v) for n, v in _header_lines(stale.headers) if n.lower() not in updated]
    new = [(n, v) for n, v in lines if n.lower() in updated]
    headers = b"".join(b"\r\n" + n + b": " + v for n, v in kept + new)
    merged = _fields(kept + new, _HEAD_FIELDS)
    directives = parse_cache_control(merged.get(b"cache-control"))
    return Entry(
        stale.status,
        stale.status_line,
        headers,
        stale.body,
        _freshness(stale.status, directives, merged, request_time, now),
        vary=stale.vary,
        etag=merged.get(b"etag"),
        last_modified=merged.get(b"last-modified"),
        **_serving(directives),
    )


def _header_lines(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each line of a stored header block."""
    pairs = []
    for line in block.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        pairs.append((name.strip(), value.strip()))
    return pairs
