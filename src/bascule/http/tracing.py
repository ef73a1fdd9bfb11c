"""Request ids and W3C trace context, for one hop through the proxy.

Rules:
1. Every request gets an id, sent upstream and back to the client as `X-Request-Id` and
   logged. A client's own X-Request-Id is kept only from a trusted proxy (a balancer in
   front that made it); from anyone else it is replaced, so ids cannot be forged into the
   logs. An id is 32 hex digits (128 random bits).
2. A valid `traceparent` (version 00) is sent on with the same trace id and flags and a new
   parent id: this hop's span. An invalid one is dropped; none is made up (tracing starts
   where a tracer samples, not at the proxy). `tracestate` passes unchanged.
3. With request ids off (`request_ids: false`), Bascule stays out of it: both headers pass
   as received, and responses get no id.
"""

from __future__ import annotations

import os
import re
from binascii import hexlify
from dataclasses import dataclass
from random import getrandbits
from typing import Final

from bascule.http.head import RequestHead

__all__ = ["Hop", "as_received", "id_line", "identify", "new_request_id", "next_traceparent"]

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
_ID = re.compile(rb"[\w.:/+=@-]{1,200}")  # UUIDs, base64 and the like: safe in a log line


@dataclass(frozen=True, slots=True)
class Hop:
    """This proxy's span in a trace: the trace, the caller's span, ours (sent on as the
    next parent), and whether the caller sampled it (flags bit 0)."""

    trace_id: bytes  # 32 hex digits
    parent_id: bytes  # 16 hex digits
    span_id: bytes  # 16 hex digits
    flags: bytes  # 2 hex digits

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)

    @property
    def traceparent(self) -> bytes:
        return b"00-%b-%b-%b" % (self.trace_id, self.span_id, self.flags)


def next_hop(value: bytes | None) -> Hop | None:
    """This hop of the trace a traceparent names (rule 2), or None."""
    if value is None:
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None or found.group(1) == _ZERO_TRACE or found.group(2) == _ZERO_SPAN:
        return None
    span = b"%016x" % (getrandbits(64) or 1)
    return Hop(found.group(1), found.group(2), span, found.group(3))


IDS_PER_BLOCK: Final = 128


class _RequestIds:
    """Request ids cut from a block of random hex digits made for IDS_PER_BLOCK ids at
    once, from the kernel's random source: formatting each id on its own
    (`b"%032x" % getrandbits(128)`) costs about 2,600 instructions, an id from the block
    about 600."""

    __slots__ = ("_block", "_next")

    def __init__(self) -> None:
        self._block = b""
        self._next = 0

    def take(self) -> bytes:
        start = self._next
        if start >= len(self._block):
            self._block = hexlify(os.urandom(16 * IDS_PER_BLOCK))
            start = 0
        self._next = start + 32
        return self._block[start : start + 32]

    def discard(self) -> None:
        """Forget the block: a forked worker must not hand out its parent's ids."""
        self._block = b""
        self._next = 0


_ids = _RequestIds()
os.register_at_fork(after_in_child=_ids.discard)


def new_request_id() -> bytes:
    return _ids.take()


def next_traceparent(value: bytes | None) -> bytes | None:
    """The traceparent for the next hop (rule 2), or None."""
    hop = next_hop(value)
    return None if hop is None else hop.traceparent


def id_line(request_id: bytes) -> bytes:
    """The X-Request-Id header line, CRLF first, as it joins a head."""
    return b"\r\nX-Request-Id: " + request_id


def identify(head: RequestHead, trusted: bool) -> tuple[bytes, bytes, Hop | None]:
    """The request's id, the header lines that carry it and its trace upstream, and this
    hop of the trace (if it came with one)."""
    request_id: bytes | None = None
    hop = None
    if head.identified:  # it came with one of them: read them as sent
        given = head.header(b"x-request-id") if trusted else None
        if given is not None and _ID.fullmatch(given):
            request_id = given
        hop = next_hop(head.header(b"traceparent"))
    if request_id is None:
        request_id = new_request_id()
    line = id_line(request_id)
    if hop is None:
        return request_id, line, None
    return request_id, line + b"\r\ntraceparent: " + hop.traceparent, hop


def as_received(head: RequestHead) -> bytes:
    """The X-Request-Id and traceparent lines as the client sent them (rule 3)."""
    if not head.identified:
        return b""
    lines = b""
    for name, shown in ((b"x-request-id", b"X-Request-Id"), (b"traceparent", b"traceparent")):
        value = head.header(name)
        if value is not None:
            lines += b"\r\n" + shown + b": " + value
    return lines
