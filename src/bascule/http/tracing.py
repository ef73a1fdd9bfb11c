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

import re
from random import getrandbits

from bascule.http.head import RequestHead

__all__ = ["as_received", "identify", "new_request_id", "next_traceparent"]

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
_ID = re.compile(rb"[\w.:/+=@-]{1,200}")  # UUIDs, base64 and the like: safe in a log line


def new_request_id() -> bytes:
    return getrandbits(128).to_bytes(16, "big").hex().encode()


def next_traceparent(value: bytes | None) -> bytes | None:
    """The traceparent for the next hop (rule 2), or None."""
    if value is None:
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None or found.group(1) == _ZERO_TRACE or found.group(2) == _ZERO_SPAN:
        return None
    return b"00-%b-%016x-%b" % (found.group(1), getrandbits(64) or 1, found.group(3))


def identify(head: RequestHead, trusted: bool) -> tuple[bytes, bytes, bytes]:
    """The request's id, its header line (for the answer), and the header lines that carry
    it and its trace upstream."""
    request_id: bytes | None = None
    traceparent = None
    if head.identified:  # it came with one of them: read them as sent
        given = head.header(b"x-request-id") if trusted else None
        if given is not None and _ID.fullmatch(given):
            request_id = given
        traceparent = next_traceparent(head.header(b"traceparent"))
    if request_id is None:
        request_id = new_request_id()
    line = b"\r\nX-Request-Id: " + request_id
    if traceparent is None:
        return request_id, line, line
    return request_id, line, line + b"\r\ntraceparent: " + traceparent


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
