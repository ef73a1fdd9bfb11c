"""What the cache keeps (`Entry`) and where (`MemoryStore`).

An entry is a stored response: its status line and header block as they will be sent
(hop-by-hop headers and framing removed, since both are redone at each use), its body, the
request header values its `Vary` names, and what its freshness is computed from.

The memory store is one least-recently-used table per worker process, bounded in bytes
(bodies, heads and keys). Several variants of one URI (by `Vary`) live under one key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from bascule.filters.cache_policy import Freshness, http_date

__all__ = ["Entry", "MemoryStore"]

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
    vary_all: bool = False  # Vary: * (never matches a request)
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
        if self.vary_all:
            return False
        return all(value_of.get(name) == value for name, value in self.vary)


class MemoryStore:
    """Entries by key, least recently used first out, within `max_size` bytes."""

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

    def delete(self, key: str) -> bool:
        variants = self._entries.pop(key, None)
        if variants is None:
            return False
        self.size -= sum(v.size for v in variants) + len(key)
        return True

    def purge(self, prefix: str) -> int:
        """Delete every key that starts with `prefix`; how many."""
        keys = [key for key in self._entries if key.startswith(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def _evict(self) -> None:
        key = next(iter(self._entries))
        self.delete(key)
