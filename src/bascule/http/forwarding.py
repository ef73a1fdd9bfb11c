"""What a proxy changes in a head it forwards (RFC 9110 §7.6), as edits of the raw bytes.

The raw header block is copied in slices around the lines that must go, and the new lines
are appended, so the cost hardly depends on how many headers the client sent.
"""

from __future__ import annotations

import re

from bascule.http.head import RequestHead, ResponseHead, Span

VIA = b"1.1 bascule"

# Hop-by-hop: meaningful for one connection only, never forwarded (RFC 9110 §7.6.1).
# Transfer-Encoding is re-framed by Bascule itself; X-Forwarded-*, X-Real-IP and Via are
# replaced by what Bascule knows, so a client cannot forge them.
_REQUEST_DROP = (
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"transfer-encoding",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
    b"via",
)
_RESPONSE_DROP = (
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"transfer-encoding",
    b"via",
)
# Connection may name any header as hop-by-hop; these are handled above or harmless.
_KNOWN_CONNECTION_TOKENS = frozenset((b"close", b"keep-alive", b"upgrade", b"te"))


def _spans_of(
    head: RequestHead | ResponseHead, names: tuple[bytes, ...], also: re.Pattern[bytes] | None
) -> list[Span]:
    special = head.special
    spans: list[Span] = [] if also is None else [m.span() for m in also.finditer(head.raw)]
    for name in names:
        found = special.get(name)
        if found is not None:
            spans.extend(span for span, _ in found)
    extra = [t for t in head.connection_tokens() if t not in _KNOWN_CONNECTION_TOKENS]
    if extra:
        spans.extend(_spans_named(head.raw, extra))
    return spans


def names_pattern(names: list[bytes]) -> re.Pattern[bytes]:
    """A pattern whose matches span the header lines called any of `names`."""
    alternatives = b"|".join(re.escape(n) for n in names)
    return re.compile(rb"\r\n(?:" + alternatives + rb"):[^\r]*", re.IGNORECASE)


def _spans_named(raw: bytes, names: list[bytes]) -> list[Span]:
    """Spans of the header lines called any of `names` (the slow path, rarely taken)."""
    return [m.span() for m in names_pattern(names).finditer(raw)]


def header_lines(raw: bytes, drop: list[Span]) -> bytes:
    """The header block (each line as CRLF + line, no final CRLF) without the `drop` spans."""
    start = raw.find(b"\r\n")
    stop = len(raw) - 4
    if not drop:
        return raw[start:stop]
    drop.sort()
    parts = []
    for span_start, span_end in drop:
        parts.append(raw[start:span_start])
        start = span_end
    parts.append(raw[start:stop])
    return b"".join(parts)


class RequestForwarding:
    """Per-listener constants for forwarding a request upstream."""

    __slots__ = ("proto_line",)

    def __init__(self, scheme: bytes) -> None:
        self.proto_line = b"\r\nX-Forwarded-Proto: " + scheme


def upstream_request_head(
    head: RequestHead,
    forwarding: RequestForwarding,
    client_ip: bytes,
    target: bytes,
    host: bytes | None,
    added: bytes = b"",
    remove: re.Pattern[bytes] | None = None,
) -> bytes:
    """The head to send upstream.

    `target` is the (possibly rewritten) path and query; `host` replaces Host when not None;
    `added` is extra header lines ("\\r\\nName: value" each) and `remove` matches lines to
    drop, both from the route's header rules.
    """
    special = head.special
    drop = _spans_of(head, _REQUEST_DROP, remove)
    parts = [head.method, b" ", target, b" HTTP/1.1"]
    if host is not None:
        found = special.get(b"host")
        if found is not None:
            drop.extend(span for span, _ in found)
        parts.append(header_lines(head.raw, drop))
        parts.append(b"\r\nHost: " + host)
    else:
        parts.append(header_lines(head.raw, drop))
    xff = special.get(b"x-forwarded-for")
    if xff is None:
        parts.append(b"\r\nX-Forwarded-For: " + client_ip)
    else:
        parts.append(b"\r\nX-Forwarded-For: " + b", ".join(v for _, v in xff) + b", " + client_ip)
    parts.append(forwarding.proto_line)
    received_host = special.get(b"host")
    if received_host is not None:
        parts.append(b"\r\nX-Forwarded-Host: " + received_host[0][1])
    parts.append(b"\r\nX-Real-IP: " + client_ip)
    via = special.get(b"via")
    if via is None:
        parts.append(b"\r\nVia: " + VIA)
    else:
        parts.append(b"\r\nVia: " + b", ".join(v for _, v in via) + b", " + VIA)
    if head.chunked:
        parts.append(b"\r\nTransfer-Encoding: chunked")
    if head.wants_upgrade:
        parts.append(b"\r\nConnection: upgrade\r\nUpgrade: " + head.upgrade)
    if added:
        parts.append(added)
    parts.append(b"\r\n\r\n")
    return b"".join(parts)


def downstream_response_head(
    head: ResponseHead,
    *,
    chunked: bool,
    close: bool,
    keep_alive_1_0: bool,
    added: bytes = b"",
    remove: re.Pattern[bytes] | None = None,
) -> bytes:
    """The head to send the client: hop-by-hop removed, framing and Connection set by us."""
    drop = _spans_of(head, _RESPONSE_DROP, remove)
    line_end = head.raw.find(b"\r\n")
    parts = [b"HTTP/1.1", head.raw[8:line_end], header_lines(head.raw, drop)]
    via = head.special.get(b"via")
    if via is None:
        parts.append(b"\r\nVia: " + VIA)
    else:
        parts.append(b"\r\nVia: " + b", ".join(v for _, v in via) + b", " + VIA)
    if chunked:
        parts.append(b"\r\nTransfer-Encoding: chunked")
    if head.status == 101:
        parts.append(b"\r\nConnection: upgrade\r\nUpgrade: " + head.upgrade)
    elif close:
        parts.append(b"\r\nConnection: close")
    elif keep_alive_1_0:
        parts.append(b"\r\nConnection: keep-alive")
    if added:
        parts.append(added)
    parts.append(b"\r\n\r\n")
    return b"".join(parts)
