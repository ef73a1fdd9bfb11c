"""What a matched route does: proxy to an upstream, redirect, or answer by itself.

Actions are built once from the config and shared by every request, so they are frozen, and
whatever can be prepared (the redirect template) is prepared at construction.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

# RFC 9110 redirect statuses that carry a Location a client follows.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Placeholder name -> index into the values tuple that `Redirect.location` builds.
_PLACEHOLDERS = {"scheme": 0, "host": 1, "path": 2, "query": 3, "request_uri": 4}


@dataclass(frozen=True, slots=True)
class ProxyTo:
    """Forward the request to the named upstream."""

    upstream: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer with a redirect whose Location is `to` with its placeholders filled in.

    Placeholders: ``{scheme} {host} {path} {query} {request_uri}``, where request_uri is the
    path plus ``?query`` when the query is not empty. ``{{`` and ``}}`` are literal braces.
    """

    to: str
    status: int = 302
    # The template split once into literal bytes and placeholder indexes (ints).
    _parts: tuple[bytes | int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status not in REDIRECT_STATUSES:
            raise ValueError(
                f"redirect status {self.status} is not a redirect; "
                f"use one of {sorted(REDIRECT_STATUSES)}"
            )
        object.__setattr__(self, "_parts", _compile_template(self.to))

    def location(self, scheme: bytes, host: bytes, path: bytes, query: bytes) -> bytes:
        """The Location header value for one request.

        `host` is passed through as given: the caller decides whether it keeps the port.
        """
        parts = self._parts
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        request_uri = path + b"?" + query if query else path
        values = (scheme, host, path, query, request_uri)
        return b"".join([part if isinstance(part, bytes) else values[part] for part in parts])


def _compile_template(template: str) -> tuple[bytes | int, ...]:
    """Split a redirect template into literals and placeholder indexes, rejecting typos now
    rather than on the first request that hits the route."""
    if "\r" in template or "\n" in template:
        raise ValueError(f"redirect target {template!r} contains a line break")
    parts: list[bytes | int] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"redirect target {template!r}: {exc} (write {{{{ for a brace)") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append(literal.encode())
        if name is None:
            continue
        if name not in _PLACEHOLDERS or spec or conversion:
            raise ValueError(
                f"redirect target {template!r} has an unknown placeholder "
                f"{{{name}}}; known: {', '.join('{' + p + '}' for p in _PLACEHOLDERS)}"
            )
        parts.append(_PLACEHOLDERS[name])
    return tuple(parts) if parts else (b"",)


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer the request directly with a fixed status, body and headers."""

    status: int
    body: bytes = b""
    content_type: bytes = b"text/plain; charset=utf-8"
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"respond status {self.status} must be between 200 and 599")


Action = ProxyTo | Redirect | Respond
