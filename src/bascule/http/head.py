"""Request and response heads, kept as the raw bytes received plus the few fields the proxy needs.

A head is not split into a header list unless someone asks (`headers()`): forwarding edits
the raw block in place (see `forwarding.py`), which costs the same for 3 headers as for 30.
"""

from __future__ import annotations

import re

# Every header the proxy itself must look at or rewrite. One regex pass over the lower-cased
# head finds them all; a match spans "\r\nname:value" so dropping it is one slice.
_SPECIAL = re.compile(
    rb"\r\n(host|content-length|transfer-encoding|connection|keep-alive|proxy-connection|te"
    rb"|trailer|upgrade|expect|via|x-forwarded-for|x-forwarded-proto|x-forwarded-host"
    rb"|x-real-ip):[ \t]*([^\r]*)"
)
_ANY_HEADER = re.compile(rb"\r\n([^:\r]+):[ \t]*([^\r]*)")

Span = tuple[int, int]


class Head:
    """What requests and responses share: the raw head and the special headers found in it."""

    __slots__ = (
        "chunked",
        "connection",
        "content_length",
        "raw",
        "special",
        "upgrade",
        "version",
    )

    def __init__(self, raw: bytes, version: bytes) -> None:
        self.raw = raw  # start line through the final CRLFCRLF
        self.version = version
        self.content_length: int | None = None
        self.chunked = False
        self.connection: bytes = b""  # lower-cased Connection tokens, comma-joined
        self.upgrade: bytes = b""
        # name (lower) -> list of (span, value); only names in _SPECIAL
        self.special: dict[bytes, list[tuple[Span, bytes]]] = {}
        lower = raw.lower()
        for m in _SPECIAL.finditer(lower):
            name = m.group(1)
            start, end = m.span()
            value = raw[m.start(2) : end].rstrip(b" \t")
            entry = ((start, end), value)
            found = self.special.get(name)
            if found is None:
                self.special[name] = [entry]
            else:
                found.append(entry)
        special = self.special
        if b"content-length" in special:
            # The parser has already refused duplicates and non-digits.
            self.content_length = int(special[b"content-length"][0][1])
        if b"transfer-encoding" in special:
            self.chunked = True  # the parser refuses any coding but a final "chunked"
        if b"connection" in special:
            self.connection = b",".join(v for _, v in special[b"connection"]).lower()
        if b"upgrade" in special:
            self.upgrade = special[b"upgrade"][0][1]

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower-case), or None."""
        found = self.special.get(name)
        if found is not None:
            return found[0][1]
        for key, value in self.headers():
            if key.lower() == name:
                return value
        return None

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as (name as received, value), in order: the slow, complete view."""
        start = self.raw.find(b"\r\n")
        return [
            (m.group(1), m.group(2).rstrip(b" \t"))
            for m in _ANY_HEADER.finditer(self.raw, start, len(self.raw) - 2)
        ]

    def connection_tokens(self) -> list[bytes]:
        return [t.strip() for t in self.connection.split(b",") if t.strip()]


class RequestHead(Head):
    __slots__ = ("expect_continue", "keep_alive", "method", "path", "query", "target")

    def __init__(self, raw: bytes, version: bytes, method: bytes, target: bytes) -> None:
        super().__init__(raw, version)
        self.method = method
        self.target = target  # as received: path and query
        path, _, query = target.partition(b"?")
        self.path = path
        self.query = query
        connection = self.connection
        if version == b"1.1":
            self.keep_alive = b"close" not in connection
        else:
            self.keep_alive = b"keep-alive" in connection
        expect = self.special.get(b"expect")
        self.expect_continue = expect is not None and expect[0][1].lower() == b"100-continue"

    @property
    def host(self) -> bytes:
        found = self.special.get(b"host")
        return found[0][1] if found is not None else b""

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def wants_upgrade(self) -> bool:
        return bool(self.upgrade) and b"upgrade" in self.connection


class ResponseHead(Head):
    __slots__ = ("keep_alive", "reason", "status")

    def __init__(self, raw: bytes, version: bytes, status: int) -> None:
        super().__init__(raw, version)
        self.status = status
        line_end = raw.find(b"\r\n")
        self.reason = raw[13:line_end]  # after "HTTP/1.1 200 "
        connection = self.connection
        if version == b"1.1":
            self.keep_alive = b"close" not in connection
        else:
            self.keep_alive = b"keep-alive" in connection
