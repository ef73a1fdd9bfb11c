"""Request and response heads: the raw bytes received plus the few fields the proxy needs.

A head is not split into a header list unless someone asks (`headers()`). One regex pass
over the lower-cased head (`findall`, all in C) collects the headers the proxy itself acts
on; forwarding then edits the raw block (see `forwarding.py`), so the cost hardly depends on
how many other headers the client sent.
"""

from __future__ import annotations

import re

from bascule.http.errors import HttpError
from bascule.http.target import normalize_path, valid_host

# Headers a proxy must act on in a request, and those of them it never forwards as received:
# hop-by-hop ones (RFC 9110 §7.6.1), Transfer-Encoding (re-framed), and X-Forwarded-*,
# X-Real-IP, X-Client-Cert-Subject and Via, which Bascule sets from what it knows so clients
# cannot forge them; X-Request-Id and traceparent, which it sets for each hop.
_REQUEST_FIELDS = re.compile(  # common prefixes factored: sre tries fewer branches per line
    rb"\r\n((?:x-(?:forwarded-(?:for|proto|host)|real-ip|client-cert-subject|request-id))"
    rb"|host|content-length|connection|transfer-encoding|keep-alive|proxy-connection|te"
    rb"|trailer|upgrade|expect|via|traceparent):[ \t]*([^\r]*)"
)
_TRACING = frozenset((b"x-request-id", b"traceparent"))
_RESPONSE_FIELDS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|keep-alive|proxy-connection|te"
    rb"|trailer|upgrade|via):[ \t]*([^\r]*)"
)
_ANY_HEADER = re.compile(rb"\r\n([^:\r]+):[ \t]*([^\r]*)")

# Connection tokens that name no header to drop beyond the ones dropped anyway.
_PLAIN_CONNECTION = frozenset((b"close", b"keep-alive", b"upgrade", b"te", b""))


def _persists(version: str, connection: bytes) -> bool:
    """Whether the connection stays open after the message (RFC 9112 §9.3): with HTTP/1.1
    unless "close", with 1.0 only if "keep-alive". `connection`: the lower-case tokens.

    Written with `==` and `find`: `in` between bytes costs twice a `find` on CPython 3.11
    (it first tries the needle as an integer, and formats the TypeError it discards)."""
    if connection == b"keep-alive":
        return True
    if version == "1.1":
        return not connection or connection.find(b"close") < 0
    return connection.find(b"keep-alive") >= 0


class Head:
    """What requests and responses share. Field values are lower-cased.

    The subclasses read the headers the proxy acts on in one pass; `droppable` counts those
    that must not be forwarded as they are.
    """

    __slots__ = (
        "chunked",
        "connection",
        "content_length",
        "droppable",
        "line_end",
        "raw",
        "upgrade",
        "version",
        "via",
    )

    raw: bytes  # start line through the final CRLFCRLF
    line_end: int  # where the start line ends in `raw` (its CRLF)
    version: str  # "1.1" or "1.0"
    content_length: int | None
    chunked: bool
    connection: bytes  # Connection tokens, lower-case, comma-joined
    upgrade: bytes
    via: bytes
    droppable: int  # how many header lines must not be forwarded as they are

    def _note_hop_by_hop(self, name: bytes, value: bytes) -> None:
        """Take in a header that is not forwarded as received (rare: one call per such header)."""
        if name == b"transfer-encoding":
            self.chunked = True  # the parser refuses any coding but a final "chunked"
        elif name == b"connection":
            self.connection = self.connection + b"," + value if self.connection else value
        elif name == b"upgrade":
            self.upgrade = value.rstrip()
        elif name == b"via":
            self.via = self.via + b", " + value.rstrip() if self.via else value.rstrip()

    def header(self, name: bytes) -> bytes | None:
        """The first value of any header `name` (lower-case), as received; the slow path."""
        for key, value in self.headers():
            if key.lower() == name:
                return value
        return None

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as (name as received, value), in order."""
        return [
            (m.group(1), m.group(2).rstrip(b" \t"))
            for m in _ANY_HEADER.finditer(self.raw, self.line_end, len(self.raw) - 2)
        ]

    def transfer_codings(self) -> list[bytes]:
        """The codings of every Transfer-Encoding line, in order, lower-case (the rare path:
        only a message that has the header asks)."""
        return [
            coding.strip()
            for name, value in self.headers()
            if name.lower() == b"transfer-encoding"
            for coding in value.lower().split(b",")
        ]

    def extra_hop_by_hop(self) -> list[bytes]:
        """Header names the Connection header declares hop-by-hop, beyond the usual ones."""
        if self.connection in _PLAIN_CONNECTION:
            return []
        tokens = (t.strip() for t in self.connection.split(b","))
        return [t for t in tokens if t not in _PLAIN_CONNECTION]


class RequestHead(Head):
    """A request head. Refused (HttpError 400) here: two Host lines, a Host value that is
    no host, and a path that climbs above the root; `path` and `target` are normalized
    (see target.py). A request in absolute-form gets `host` and `absolute_form` set by the
    codec."""

    __slots__ = (
        "absolute_form",
        "expect_continue",
        "forwarded_for",
        "host",
        "identified",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "wants_upgrade",
    )

    def __init__(self, raw: bytes, version: str, method: bytes, target: bytes) -> None:
        self.raw = raw
        self.line_end = len(method) + len(target) + 10  # "METHOD SP target SP HTTP/x.y"
        self.version = version
        self.method = method
        path, _, self.query = target.partition(b"?")
        normal = normalize_path(path)
        if normal is not path:
            target = normal + target[len(path) :]
            path = normal
        self.target = target  # path (normalized) and query (as received)
        self.path = path
        self.content_length = None
        self.chunked = self.expect_continue = self.identified = self.absolute_form = False
        self.connection = self.upgrade = self.via = self.host = self.forwarded_for = b""
        droppable = 0
        hosts = 0
        for name, value in _REQUEST_FIELDS.findall(raw.lower()):
            if name == b"host":
                hosts += 1
                self.host = value.rstrip(b" \t")
                if hosts > 1 or not valid_host(self.host):
                    raise HttpError(400, "the request needs one Host header naming a host")
                continue
            if name == b"content-length":
                self.content_length = int(value)  # the parser refused duplicates, non-digits
                continue
            if name == b"expect":
                self.expect_continue = value.rstrip() == b"100-continue"
                continue
            droppable += 1
            if name in _TRACING:
                self.identified = True  # values as sent (case kept): `header()` reads them
            elif name == b"x-forwarded-for":
                seen = self.forwarded_for
                self.forwarded_for = seen + b", " + value.rstrip() if seen else value.rstrip()
            else:
                self._note_hop_by_hop(name, value)
        self.droppable = droppable
        self.wants_upgrade = (
            version == "1.1" and bool(self.upgrade) and self.connection.find(b"upgrade") >= 0
        )  # RFC 9110 §7.8: a server ignores Upgrade in an HTTP/1.0 request
        self.keep_alive = _persists(version, self.connection)

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


class ResponseHead(Head):
    __slots__ = ("keep_alive", "status")

    def __init__(self, raw: bytes, version: str, status: int) -> None:
        self.raw = raw
        self.line_end = raw.find(b"\r\n")
        self.version = version
        self.status = status
        self.content_length = None
        self.chunked = False
        self.connection = self.upgrade = self.via = b""
        droppable = 0
        for name, value in _RESPONSE_FIELDS.findall(raw.lower()):
            if name == b"content-length":
                self.content_length = int(value)
                continue
            droppable += 1
            self._note_hop_by_hop(name, value)
        self.droppable = droppable
        # a body delimited by the close is handled where framing is decided
        self.keep_alive = _persists(version, self.connection)
