"""The server name a TLS client asks for, read from its ClientHello without terminating TLS
(nginx's `ssl_preread`, HAProxy's `req.ssl_sni`), and the `sni_routes` that map names to
upstreams.

Sans-IO: `read_server_name` takes the bytes a client sent so far. Rules:

1. It returns a `ClientHello` once the whole handshake message has arrived; while the
   bytes are a valid beginning of one, the number of bytes to wait for before calling it
   again (the end of the record under way); and it raises `NotTls` as soon as they cannot
   be one. It only reads: the caller replays every byte to the target, which does the TLS.
2. The ClientHello may span several TLS records (large key shares do); it is reassembled
   up to MAX_HELLO bytes from at most MAX_RECORDS records, and anything more is refused.
   With rule 1 that bounds the work a client can cause, however it slices its bytes.
3. A ClientHello without a server_name extension is valid: `server_name` is None and the
   listener's default upstream takes it. A name is returned lower-case, without a trailing
   dot; one that is not a host name (bytes outside letters, digits, `-`, `_` and `.`) is
   refused, since no route could match it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["MAX_HELLO", "MAX_RECORDS", "ClientHello", "NotTls", "ServerNames", "read_server_name"]

MAX_HELLO = 64 * 1024
"""Largest ClientHello read (handshake bytes). Today's, with post-quantum key shares, are
under 2 KiB; the TLS limit is 16 MiB, far more than a proxy should buffer for a name."""

MAX_RECORDS = 16
"""Most TLS records a ClientHello may be split into (stacks send one, or a few when it is
larger than a record)."""

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_MAX_RECORD = 16384 + 2048  # TLSPlaintext at most 2^14; a little slack for old stacks
_SERVER_NAME = 0x0000
_HOST_NAME = 0x00
_HOST = re.compile(rb"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


class NotTls(ValueError):
    """The bytes are not a TLS ClientHello (the message says why)."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None


def read_server_name(data: bytes) -> ClientHello | int:
    """The ClientHello at the start of `data`, or how many bytes to wait for (rule 1)."""
    handshake = bytearray()
    offset = 0
    for _ in range(MAX_RECORDS):
        header = data[offset : offset + 5]
        if header[:1] and header[0] != _HANDSHAKE:
            raise NotTls(_not_a_handshake(data, offset))
        if len(header) < 5:
            return offset + 5
        if header[1] != 3:
            raise NotTls(f"TLS record version {header[1]}.{header[2]} is not 3.x")
        length = int.from_bytes(header[3:5], "big")
        if not 0 < length <= _MAX_RECORD:
            raise NotTls(f"a TLS record of {length} bytes")
        fragment = data[offset + 5 : offset + 5 + length]
        handshake += fragment
        if len(handshake) >= 4:
            if handshake[0] != _CLIENT_HELLO:
                raise NotTls(f"the first handshake message is of type {handshake[0]}, not 1")
            size = int.from_bytes(handshake[1:4], "big")
            if size > MAX_HELLO:
                raise NotTls(f"a ClientHello of {size} bytes (more than {MAX_HELLO})")
            if len(handshake) >= 4 + size:
                return ClientHello(_server_name(bytes(handshake[4 : 4 + size])))
        if len(fragment) < length:
            return offset + 5 + length
        offset += 5 + length
    raise NotTls(f"a ClientHello split into more than {MAX_RECORDS} records")


def _not_a_handshake(data: bytes, offset: int) -> str:
    if offset:
        return "a non-handshake TLS record before the ClientHello was complete"
    start = data[:8]
    if start[:1] == b"\x80":
        return "an SSLv2-style ClientHello (no server name possible)"
    if start[:1].isalpha():
        return f"plain text instead of a TLS ClientHello ({start!r}...)"
    return f"the first byte is 0x{data[0]:02x}, not 0x16 (a TLS handshake)"


class _Reader:
    """Bounds-checked reads over one handshake message; running out is a NotTls."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise NotTls("a truncated ClientHello")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def left(self) -> int:
        return len(self.data) - self.offset


def _server_name(hello: bytes) -> str | None:
    reader = _Reader(hello)
    reader.take(2 + 32)  # legacy_version, random
    reader.vector(1)  # legacy_session_id
    reader.vector(2)  # cipher_suites
    reader.vector(1)  # legacy_compression_methods
    if reader.left == 0:
        return None  # no extensions at all (SSL 3.0-era clients)
    extensions = _Reader(reader.vector(2))
    while extensions.left:
        kind = extensions.number(2)
        body = extensions.vector(2)
        if kind == _SERVER_NAME:
            return _host_name(body)
    return None


def _host_name(extension: bytes) -> str | None:
    names = _Reader(_Reader(extension).vector(2))
    while names.left:
        kind = names.number(1)
        name = names.vector(2)
        if kind == _HOST_NAME:
            host = name.lower()
            if host.endswith(b"."):
                host = host[:-1]
            if not _HOST.fullmatch(host):
                raise NotTls(f"the server name {name[:64]!r} is not a host name")
            return host.decode("ascii")
    return None


T = TypeVar("T")


class ServerNames(Generic[T]):
    """`sni_routes`: exact names and `*.suffix` wildcards, each to a value (an upstream).

    An exact name wins; then the longest wildcard suffix. `*.example.com` matches
    `a.example.com` and `a.b.example.com`, not `example.com` (as host patterns of routes).
    Names are given in normal form (lower case, no trailing dot), as the config keeps them.
    """

    __slots__ = ("_exact", "_suffixes")

    def __init__(self, routes: Mapping[str, T]) -> None:
        self._exact: dict[str, T] = {}
        self._suffixes: dict[str, T] = {}  # ".example.com" for "*.example.com"
        for name, value in routes.items():
            if name.startswith("*."):
                self._suffixes[name[1:]] = value
            else:
                self._exact[name] = value

    def lookup(self, name: str) -> T | None:
        found = self._exact.get(name)
        if found is not None or not self._suffixes:
            return found
        dot = name.find(".", 1)
        while dot != -1:
            found = self._suffixes.get(name[dot:])
            if found is not None:
                return found
            dot = name.find(".", dot + 1)
        return None
