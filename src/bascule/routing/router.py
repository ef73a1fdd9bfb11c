"""Router: the first route, in file order, that matches a request.

Host criteria are decided by an index built once, so `match` never scans every route's
hosts. For each host a route names exactly, and for each wildcard suffix, the index holds
the full candidate list — that host's routes, the wildcards covering it and the host-less
routes — merged back into file order. `match` then does one dict lookup on the raw Host
value (normalizing it only the first time it is seen) and checks path, method and headers
on that short list. A table without host criteria skips the host entirely, and a route
whose only other criterion is a path prefix (the common `path: /`) is tested inline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bascule.routing.host import normalize_host
from bascule.routing.route import HeaderLookup, Route

# Raw Host values remembered with their candidates, so a repeated `Example.com:8080` costs
# one dict lookup. Clients send few distinct values; the bounds keep a client that sends
# random or huge ones from growing memory (it only pays normalization, as with no cache).
_HOST_CACHE_ENTRIES = 4096
_HOST_CACHE_KEY_BYTES = 262  # a 253-byte DNS name plus ":65535" and a trailing dot

# Each candidate with its inline prefix: bytes when the prefix is the route's only criterion
# besides the host (b"" for none at all), None when `matches_without_host` must decide.
_Candidates = tuple[tuple[Route, bytes | None], ...]


class Router:
    """Routes for one listener, tried in order; the first match wins."""

    __slots__ = ("_any_host", "_by_host", "_by_suffix", "_hostless", "_seen", "routes")

    routes: tuple[Route, ...]
    # Normalized exact host -> candidates.
    _by_host: dict[bytes, _Candidates]
    # Wildcard suffix (b".example.com") -> candidates for hosts whose longest registered
    # matching suffix it is; a host matching a longer suffix matches every shorter one too.
    _by_suffix: dict[bytes, _Candidates]
    _hostless: _Candidates  # candidates for a host that no route names
    _any_host: bool  # no route has host criteria: skip host handling entirely
    _seen: dict[bytes, _Candidates]  # raw Host value -> candidates (bounded cache)

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        hostless = [i for i, route in enumerate(self.routes) if route.hosts is None]
        exact: dict[bytes, set[int]] = {}
        suffixes: dict[bytes, set[int]] = {}
        for i, route in enumerate(self.routes):
            for host in route.hosts or ():
                if host.startswith(b"*."):
                    suffixes.setdefault(host[1:], set()).add(i)
                else:
                    exact.setdefault(host, set()).add(i)
        self._by_host = {
            host: self._merge(hostless, indexes, _covering(host, suffixes))
            for host, indexes in exact.items()
        }
        self._by_suffix = {
            suffix: self._merge(hostless, _covering(suffix, suffixes)) for suffix in suffixes
        }
        self._hostless = self._merge(hostless)
        self._any_host = not exact and not suffixes
        self._seen = {}

    def _merge(self, *index_groups: Iterable[int]) -> _Candidates:
        """Routes at these indexes, each once, in file order, with their inline prefix."""
        return tuple(
            (self.routes[i], _inline_prefix(self.routes[i]))
            for i in sorted(set().union(*index_groups))
        )

    def for_listener(self, name: str) -> Router:
        """A Router over the routes served by the named listener."""
        return Router(
            [route for route in self.routes if route.listeners is None or name in route.listeners]
        )

    def match(self, method: bytes, host: bytes, path: bytes, header: HeaderLookup) -> Route | None:
        """The first route that matches, or None (the caller answers 404).

        `host` is the raw Host header ("" when absent, may carry a port); `path` is the raw
        request path without the query; `header` is called only for routes with header
        criteria.
        """
        if self._any_host:
            candidates = self._hostless
        else:
            found = self._seen.get(host)
            if found is None:
                found = self._candidates(normalize_host(host))
                if len(host) <= _HOST_CACHE_KEY_BYTES:
                    if len(self._seen) >= _HOST_CACHE_ENTRIES:
                        self._seen.clear()  # forget junk rather than keep it forever
                    self._seen[host] = found
            candidates = found
        for route, prefix in candidates:
            if prefix is not None:
                if path.startswith(prefix):
                    return route
            elif route.matches_without_host(method, path, header):
                return route
        return None

    def _candidates(self, host: bytes) -> _Candidates:
        found = self._by_host.get(host)
        if found is not None:
            return found
        if self._by_suffix:
            # Leftmost dot first: the longest suffix, whose list includes the shorter ones.
            # A dot at 0 would leave an empty first label, which a wildcard does not match.
            dot = host.find(b".", 1)
            while dot != -1:
                found = self._by_suffix.get(host[dot:])
                if found is not None:
                    return found
                dot = host.find(b".", dot + 1)
        return self._hostless


def _inline_prefix(route: Route) -> bytes | None:
    """The prefix the Router may test by itself, saving a method call on most routes."""
    if route.methods is not None or route.headers:
        return None
    if route.path_exact is not None or route.path_regex is not None:
        return None
    return route.path_prefix or b""


def _covering(name: bytes, suffixes: dict[bytes, set[int]]) -> set[int]:
    """Indexes of wildcard routes covering `name`: a host, or a registered suffix standing
    for every host that ends in it (which is why a suffix covers itself, a host never).
    Suffixes start with a dot and route hosts never do, so the first byte tells them apart."""
    covering: set[int] = set()
    for suffix, indexes in suffixes.items():
        if name.endswith(suffix) and (name[:1] == b"." or len(name) > len(suffix)):
            covering |= indexes
    return covering
