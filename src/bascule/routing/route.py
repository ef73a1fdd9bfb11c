"""Route: a match on host, path, method and headers, and the action to take.

Routes are built once at startup from plain values (the config layer converts its models),
so every criterion is converted here to the bytes the request path compares against, and
every mistake is reported here, naming the route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from bascule.routing.actions import Action
from bascule.routing.host import parse_host_pattern

HeaderLookup = Callable[[bytes], bytes | None]
"""Returns a request header's value by lower-case name, or None. Costly for the caller (it
may build a header index), so a route asks only when it has header criteria."""

# Characters that cannot appear in a header name (RFC 9110 token) and are easy to type by
# mistake; catching them here avoids a criterion that silently never matches.
_BAD_HEADER_NAME_CHARS = frozenset(' \t\r\n:"(),/;<=>?@[\\]{}')


class Route:
    """A match and an action. Only `filters` is meant to change after construction.

    Matching semantics (every given criterion must hold):
    - hosts: exact (``api.example.com``) or wildcard (``*.example.com``: any subdomain at any
      depth, not the apex); case-insensitive; the port is ignored. None = any host.
    - path: a byte prefix, as nginx's prefix locations: ``/v1`` matches ``/v1x`` too, so
      write ``/v1/`` to mean the directory. path_exact: the whole path. path_regex: a
      `re.search` over the raw path, anchored only where the pattern says (``^``, ``$``).
      At most one of the three. The path is raw (still percent-encoded), without the query.
    - methods: any of these upper-case methods; methods are case-sensitive on the wire.
    - headers: each named header (case-insensitive name) has exactly this value.
    """

    __slots__ = (
        "action",
        "filters",
        "headers",
        "hosts",
        "listeners",
        "methods",
        "name",
        "path_exact",
        "path_prefix",
        "path_regex",
        "preserve_host",
    )

    name: str
    action: Action
    hosts: tuple[bytes, ...] | None
    path_prefix: bytes | None
    path_exact: bytes | None
    path_regex: re.Pattern[bytes] | None
    methods: frozenset[bytes] | None
    headers: tuple[tuple[bytes, bytes], ...]
    listeners: frozenset[str] | None
    preserve_host: bool
    filters: tuple[object, ...]

    def __init__(
        self,
        name: str,
        action: Action,
        *,
        hosts: Sequence[str] | None = None,
        path: str | None = None,
        path_exact: str | None = None,
        path_regex: str | None = None,
        methods: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        listeners: Sequence[str] | None = None,
        preserve_host: bool = True,
    ) -> None:
        self.name = name
        self.action = action
        try:
            self.hosts = _hosts(hosts)
            self.path_prefix, self.path_exact, self.path_regex = _path(path, path_exact, path_regex)
            self.methods = _methods(methods)
            self.headers = _headers(headers)
            self.listeners = _listeners(listeners)
        except ValueError as exc:
            raise ValueError(f"route {name!r}: {exc}") from None
        self.preserve_host = preserve_host
        # Filled by the engine once it has built the route's filter instances.
        self.filters = ()

    def matches_without_host(self, method: bytes, path: bytes, header: HeaderLookup) -> bool:
        """Whether the request satisfies every criterion except the host.

        The Router's host index has already chosen this route for the request's host; this
        checks the rest, cheapest first, and calls `header` only for header criteria.
        """
        if self.methods is not None and method not in self.methods:
            return False
        if self.path_prefix is not None:
            if not path.startswith(self.path_prefix):
                return False
        elif self.path_exact is not None:
            if path != self.path_exact:
                return False
        elif self.path_regex is not None and self.path_regex.search(path) is None:
            return False
        # `not headers` first: a route without header criteria builds no generator.
        headers = self.headers
        return not headers or all(header(name) == value for name, value in headers)

    def __repr__(self) -> str:
        return f"Route({self.name!r}, {self.action!r})"


def _hosts(hosts: Sequence[str] | None) -> tuple[bytes, ...] | None:
    if hosts is None:
        return None
    if isinstance(hosts, str):
        raise ValueError(f"hosts must be a list of host names, not the string {hosts!r}")
    if not hosts:
        raise ValueError("hosts is empty, so nothing would match; omit it to match any host")
    return tuple(dict.fromkeys(parse_host_pattern(host) for host in hosts))


def _path(
    prefix: str | None, exact: str | None, regex: str | None
) -> tuple[bytes | None, bytes | None, re.Pattern[bytes] | None]:
    if sum(criterion is not None for criterion in (prefix, exact, regex)) > 1:
        raise ValueError("give at most one of path, path_exact and path_regex")
    compiled = None
    if regex is not None:
        try:
            compiled = re.compile(regex.encode())
        except re.error as exc:
            raise ValueError(f"path_regex {regex!r} does not compile: {exc}") from None
    return _path_bytes("path", prefix), _path_bytes("path_exact", exact), compiled


def _path_bytes(key: str, path: str | None) -> bytes | None:
    if path is None:
        return None
    if not path.startswith("/"):
        raise ValueError(f"{key} {path!r} must start with '/'")
    if not path.isascii():
        raise ValueError(
            f"{key} {path!r} has non-ASCII characters; request paths arrive percent-encoded, "
            "so write them percent-encoded (é is %C3%A9)"
        )
    return path.encode("ascii")


def _methods(methods: Sequence[str] | None) -> frozenset[bytes] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        raise ValueError(f"methods must be a list, such as [{methods}], not a string")
    if not methods:
        raise ValueError("methods is empty, so nothing would match; omit it to match any method")
    return frozenset(method.strip().upper().encode("ascii") for method in methods)


def _headers(headers: Mapping[str, str] | None) -> tuple[tuple[bytes, bytes], ...]:
    if not headers:
        return ()
    criteria = []
    for name, value in headers.items():
        if not name or _BAD_HEADER_NAME_CHARS.intersection(name) or not name.isascii():
            raise ValueError(f"{name!r} is not a header name")
        criteria.append((name.lower().encode("ascii"), value.encode()))
    return tuple(criteria)


def _listeners(listeners: Sequence[str] | None) -> frozenset[str] | None:
    if listeners is None:
        return None
    if isinstance(listeners, str):
        raise ValueError(f"listeners must be a list, such as [{listeners}], not a string")
    if not listeners:
        raise ValueError("listeners is empty, so no listener would serve it; omit it for all")
    return frozenset(listeners)
