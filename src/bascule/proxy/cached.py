"""A stored response made ready for one client: its age, its Cache-Status, the route's
response edits and compression, framing, and 304 when the client's validators match."""

from __future__ import annotations

from bascule.filters.cache import Fields, etag_matches
from bascule.filters.cache_policy import http_date
from bascule.filters.cache_store import Entry
from bascule.http.forwarding import VIA
from bascule.http.head import ResponseHead
from bascule.http.tracing import id_line
from bascule.proxy.exchange import Exchange

__all__ = ["cached_response", "not_modified"]


def not_modified(fields: Fields, entry: Entry) -> bool:
    """Do the client's own validators match the stored response (RFC 9110 §13.2.2)?"""
    if entry.status != 200:
        return False
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        return etag_matches(entry.etag, if_none_match)
    if_modified_since = fields.get(b"if-modified-since")
    if if_modified_since is None or entry.modified_at is None:
        return False
    since = http_date(if_modified_since)
    return since is not None and entry.modified_at <= since


def cached_response(
    ex: Exchange,
    entry: Entry,
    fields: Fields,
    cache_status: bytes,
    now: float,
    *,
    close: bool,
    keep_alive_1_0: bool,
) -> bytes:
    """The bytes that answer `ex` from `entry`; sets the exchange's status and byte count."""
    request = ex.head
    plan = ex.plan
    assert plan is not None
    unchanged = not_modified(fields, entry)
    status_line = b" 304 Not Modified" if unchanged else entry.status_line
    headers = entry.headers
    if plan.response_remove is not None:
        headers = plan.response_remove.sub(b"", headers)
    body = b"" if unchanged else entry.body
    lines = [b"HTTP/1.1", status_line, headers]
    compression = plan.compression
    if compression is not None and not unchanged:
        head = ResponseHead(
            b"HTTP/1.1%b%b\r\nContent-Length: %d\r\n\r\n" % (status_line, headers, len(body)),
            "1.1",
            entry.status,
        )
        encoder, added = compression.apply(request, head)
        if encoder is not None:
            lines[2] = compression.remove.sub(b"", headers)
            body = encoder.compress(body) + encoder.finish()
        lines.append(added)
    age = max(0, int(entry.freshness.current_age(now)))
    lines.append(b"\r\nAge: %d\r\nCache-Status: bascule; %b\r\nVia: %b" % (age, cache_status, VIA))
    if not unchanged:
        lines.append(b"\r\nContent-Length: %d" % len(body))
    if close:
        lines.append(b"\r\nConnection: close")
    elif keep_alive_1_0:
        lines.append(b"\r\nConnection: keep-alive")
    lines.append(plan.response_added)
    if ex.request_id:
        lines.append(id_line(ex.request_id))
    lines.append(b"\r\n\r\n")
    if request.method != b"HEAD":
        lines.append(body)
    ex.status = 304 if unchanged else entry.status
    ex.bytes_out = 0 if request.method == b"HEAD" else len(body)
    return b"".join(lines)
