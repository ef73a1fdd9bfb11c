"""What the cache keeps (`Entry`) and where (`Store`: `MemoryStore` here, `RedisStore` in
`cache_redis`).

An entry is a stored response: its status line and header block as they will be sent
(hop-by-hop headers and framing removed, since both are redone at each use), its body, the
request header values its `Vary` names, and what its freshness is computed from.

The memory store is one least-recently-used table per worker process, bounded in bytes
(bodies, heads and keys). Several variants of one URI (by `Vary`) live under one key.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bascule.filters.cache_policy import Freshness, http_date

__all__ = ["Entry", "MemoryStore", "Store"]

ENTRY_OVERHEAD = 512
"""Bytes counted per entry beyond its head and body: the objects that hold them."""


@dataclass(slots=True)
class Entry:
    status: int
    status_line: bytes  # " 200 OK": what follows the version
    headers: bytes  # header lines, each CRLF + line, no framing or hop-by-hop lines
    body: bytes
    freshness: Freshness
    vary: tuple[tuple[bytes, bytes | None], ...] = ()  # (lower-case name, request value)
    etag: bytes | None = None
    last_modified: bytes | None = None
    must_revalidate: bool = False  # no-cache, must-revalidate or proxy-revalidate
    no_cache: bool = False  # no-cache: validate before every use
    stale_while_revalidate: int = 0  # seconds it may be served stale while refreshed
    stale_if_error: int = 0  # seconds it may be served stale when the target fails
    size: int = field(init=False)
    modified_at: float | None = field(init=False)  # Last-Modified as a timestamp

    def __post_init__(self) -> None:
        self.size = len(self.body) + len(self.headers) + ENTRY_OVERHEAD
        self.modified_at = http_date(self.last_modified)

    def matches(self, value_of: Mapping[bytes, bytes | None]) -> bool:
        """Does a request with these header values select this variant (RFC 9111 §4.1)?"""
        return all(value_of.get(name) == value for name, value in self.vary)

    def record(self) -> str:
        """Everything but the body, as JSON (a shared store keeps the body apart)."""
        f = self.freshness
        return json.dumps(
            {
                "status": self.status,
                "line": self.status_line.decode("latin-1"),
                "headers": self.headers.decode("latin-1"),
                "times": [f.request_time, f.response_time, f.date, f.age, f.lifetime],
                "vary": [[n.decode("latin-1"), _text(v)] for n, v in self.vary],
                "etag": _text(self.etag),
                "last_modified": _text(self.last_modified),
                "flags": [self.must_revalidate, self.no_cache],
                "windows": [self.stale_while_revalidate, self.stale_if_error],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_record(cls, record: str | bytes, body: bytes) -> Entry:
        """The entry `record()` described, with its body; ValueError if it is not one."""
        try:
            data: dict[str, Any] = json.loads(record)
            request_time, response_time, date, age, lifetime = data["times"]
            must_revalidate, no_cache = data["flags"]
            swr, sie = data["windows"]
            return cls(
                int(data["status"]),
                data["line"].encode("latin-1"),
                data["headers"].encode("latin-1"),
                body,
                Freshness(request_time, response_time, date, age, lifetime),
                vary=tuple((n.encode("latin-1"), _raw(v)) for n, v in data["vary"]),
                etag=_raw(data["etag"]),
                last_modified=_raw(data["last_modified"]),
                must_revalidate=bool(must_revalidate),
                no_cache=bool(no_cache),
                stale_while_revalidate=int(swr),
                stale_if_error=int(sie),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a stored response: {exc}") from None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _raw(value: str | None) -> bytes | None:
    return None if value is None else value.encode("latin-1")


class Store(Protocol):
    """Where a route's cache keeps entries. A local store answers reads at once (`get`);
    a shared one is read with `fetch`, awaited. Writes never wait: a shared store sends
    them in the background."""

    shared: bool

    async def fetch(self, key: str) -> list[Entry]: ...
    def put(self, key: str, entry: Entry) -> None: ...
    def delete(self, key: str) -> None: ...
    async def purge(self, prefix: str) -> int: ...
    async def close(self) -> None: ...


class MemoryStore:
    """Entries by key, least recently used first out, within `max_size` bytes."""

    shared = False

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self._entries: OrderedDict[str, list[Entry]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(variants) for variants in self._entries.values())

    def get(self, key: str) -> list[Entry]:
        variants = self._entries.get(key)
        if variants is None:
            return []
        self._entries.move_to_end(key)
        return variants

    async def fetch(self, key: str) -> list[Entry]:
        return self.get(key)

    def put(self, key: str, entry: Entry) -> None:
        """Store `entry`, replacing a variant with the same Vary values."""
        if entry.size + len(key) > self.max_size:
            return
        variants = self._entries.setdefault(key, [])
        for old in [v for v in variants if v.vary == entry.vary]:
            variants.remove(old)
            self.size -= old.size
        variants.append(entry)
        self.size += entry.size + (len(key) if len(variants) == 1 else 0)
        self._entries.move_to_end(key)
        while self.size > self.max_size:
            self._evict()

    def delete(self, key: str) -> None:
        variants = self._entries.pop(key, None)
        if variants is not None:
            self.size -= sum(v.size for v in variants) + len(key)

    async def purge(self, prefix: str) -> int:
        """Delete every key that starts with `prefix`; how many."""
        keys = [key for key in self._entries if key.startswith(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    async def close(self) -> None:
        self._entries.clear()
        self.size = 0

    def _evict(self) -> None:
        key = next(iter(self._entries))
        self.delete(key)
