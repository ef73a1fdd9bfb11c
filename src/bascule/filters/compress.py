"""Response compression: which responses qualify, what the client accepts, and streaming
encoders for zstd, br (Brotli) and gzip.

Rules:

1. A response qualifies when the request is not HEAD and asked for no Range; its status
   has a body and is not partial (not 1xx, 204, 206 or 304); it is not encoded already
   (Content-Encoding) and does not forbid it (`Cache-Control: no-transform`); its
   Content-Type is one of `types`; and its length, when known, is at least `min_size`.
2. A qualifying response varies with Accept-Encoding whatever the client sent, so it gets
   `Vary: Accept-Encoding` (once) even when it goes out as it is.
3. The encoding is chosen from Accept-Encoding by q-value (RFC 9110 §12.5.3): the highest
   q among the route's `algorithms`, ties going to the route's order; `*` stands for any
   algorithm not named; `x-gzip` is gzip. If the client names `identity` with a q higher
   than every algorithm it accepts, the response goes out as it is.
4. A compressed response loses Content-Length (it is re-framed), its strong ETag becomes
   weak (the bytes differ, the meaning does not) and it gains Content-Encoding.
5. Encoders flush after every chunk: what the client has received always decodes, so a
   slow stream (server-sent events, a long report) is not held back. Memory stays flat
   whatever the size of the response.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Protocol

import brotli
import zstandard

from bascule.http.head import RequestHead, ResponseHead

__all__ = ["Compression", "Encoder", "choose_encoding", "parse_accept_encoding"]

_NO_BODY = frozenset((101, 204, 206, 304))
_WANTED = frozenset((b"content-encoding", b"content-type", b"cache-control", b"etag", b"vary"))
_Q = re.compile(rb";\s*q\s*=\s*([^;\s]*)", re.IGNORECASE)
VARY_LINE = b"\r\nVary: Accept-Encoding"


class Encoder(Protocol):
    name: bytes  # the Content-Encoding token

    def compress(self, chunk: bytes) -> bytes:
        """Compressed bytes for `chunk`, flushed: all output so far decodes (rule 5)."""
        ...

    def finish(self) -> bytes:
        """The end of the stream."""
        ...


class GzipEncoder:
    name = b"gzip"

    def __init__(self, level: int) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: a gzip header

    def compress(self, chunk: bytes) -> bytes:
        return self._zlib.compress(chunk) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._zlib.flush()


class BrotliEncoder:
    name = b"br"

    def __init__(self, level: int) -> None:
        self._brotli = brotli.Compressor(quality=level)

    def compress(self, chunk: bytes) -> bytes:
        return bytes(self._brotli.process(chunk) + self._brotli.flush())

    def finish(self) -> bytes:
        return bytes(self._brotli.finish())


class ZstdEncoder:
    name = b"zstd"

    def __init__(self, level: int) -> None:
        self._zstd = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, chunk: bytes) -> bytes:
        return self._zstd.compress(chunk) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._zstd.flush()


_ENCODERS: dict[str, type[GzipEncoder | BrotliEncoder | ZstdEncoder]] = {
    "gzip": GzipEncoder,
    "br": BrotliEncoder,
    "zstd": ZstdEncoder,
}


def parse_accept_encoding(value: bytes) -> dict[str, float]:
    """Coding -> q from an Accept-Encoding value; a q that cannot be read counts as 0."""
    accepted: dict[str, float] = {}
    for item in value.split(b","):
        coding = item.split(b";", 1)[0].strip().lower()
        if not coding:
            continue
        found = _Q.search(item)
        try:
            q = float(found.group(1)) if found else 1.0
        except ValueError:
            q = 0.0
        name = "gzip" if coding == b"x-gzip" else coding.decode("latin-1")
        accepted[name] = max(0.0, min(q, 1.0))
    return accepted


def choose_encoding(accept_encoding: bytes | None, algorithms: Sequence[str]) -> str | None:
    """The algorithm to use, or None for the response as it is (rule 3)."""
    if not accept_encoding:
        return None
    accepted = parse_accept_encoding(accept_encoding)
    star = accepted.get("*")
    best, best_q = None, 0.0
    for name in algorithms:
        q = accepted.get(name, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = name, q
    if best is None:
        return None
    identity = accepted.get("identity")
    return None if identity is not None and identity > best_q else best


class Compression:
    """A route's `compress:` settings, ready for the hot path."""

    def __init__(
        self,
        algorithms: Sequence[str],
        min_size: int,
        types: Sequence[str],
        levels: dict[str, int],
        remove: re.Pattern[bytes],
    ) -> None:
        self.algorithms = tuple(algorithms)
        self.min_size = min_size
        self.exact_types = frozenset(t.encode() for t in types if not t.endswith("/*"))
        self.type_prefixes = tuple(t[:-1].encode() for t in types if t.endswith("/*"))
        self.levels = levels
        # the lines a compressed response loses: Content-Length, ETag (re-added weak), and
        # whatever the route's header rules remove anyway
        self.remove = remove

    def apply(self, request: RequestHead, response: ResponseHead) -> tuple[Encoder | None, bytes]:
        """The encoder for this response (None: as it is) and the header lines to add."""
        if request.method == b"HEAD" or response.status in _NO_BODY or response.status < 200:
            return None, b""
        length = response.content_length
        if length is not None and length < self.min_size:
            return None, b""
        fields: dict[bytes, bytes] = {}
        for name, value in response.headers():
            lower = name.lower()
            if lower in _WANTED:
                seen = fields.get(lower)
                fields[lower] = seen + b", " + value if seen else value
        if b"content-encoding" in fields or b"no-transform" in fields.get(b"cache-control", b""):
            return None, b""
        if not self._compressible(fields.get(b"content-type")):
            return None, b""
        if request.header(b"range") is not None:
            return None, b""
        vary = fields.get(b"vary", b"").lower()
        lines = b"" if b"accept-encoding" in vary or b"*" in vary else VARY_LINE
        chosen = choose_encoding(request.header(b"accept-encoding"), self.algorithms)
        if chosen is None:
            return None, lines
        encoder = _ENCODERS[chosen](self.levels[chosen])
        lines += b"\r\nContent-Encoding: " + encoder.name
        etag = fields.get(b"etag")
        if etag is not None:
            lines += b"\r\nETag: " + (etag if etag.startswith(b"W/") else b"W/" + etag)
        return encoder, lines

    def _compressible(self, content_type: bytes | None) -> bool:
        if content_type is None:
            return False
        media = content_type.split(b";", 1)[0].strip().lower()
        return media in self.exact_types or media.startswith(self.type_prefixes)
