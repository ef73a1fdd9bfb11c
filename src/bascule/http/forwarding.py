"""What a proxy changes in a head it forwards (RFC 9110 §7.6), as edits of the raw bytes.

The header block is forwarded as received, minus the lines that must not pass (removed by
one compiled `sub`, run only when such a line is present), plus the lines Bascule adds.
"""

from __future__ import annotations

import re

from bascule.http.head import RequestHead, ResponseHead

VIA = b"1.1 bascule"
_VIA_LINE = b"\r\nVia: " + VIA
CLIENT_CERT_SUBJECT = b"X-Client-Cert-Subject"
"""The verified client certificate's subject (mTLS listeners); dropped from every request
as received, so only Bascule can set it."""


def names_pattern(names: list[bytes] | tuple[bytes, ...]) -> re.Pattern[bytes]:
    """Matches each whole header line ("\\r\\nName: value") called any of `names`."""
    alternatives = b"|".join(re.escape(n) for n in sorted(set(names)))
    return re.compile(rb"\r\n(?:" + alternatives + rb"):[^\r]*", re.IGNORECASE)


_REQUEST_DROP = names_pattern((
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"transfer-encoding", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
    b"x-real-ip", b"via", b"x-client-cert-subject", b"x-request-id", b"traceparent",
))  # fmt: skip
_RESPONSE_DROP = names_pattern((
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"transfer-encoding", b"via",
))  # fmt: skip
_HOST = names_pattern((b"host",))
_CONNECTION_LINES = {
    b"keep-alive": b"\r\nConnection: keep-alive",
    b"close": b"\r\nConnection: close",
}


def _header_block(
    head: RequestHead | ResponseHead, drop: re.Pattern[bytes], remove: re.Pattern[bytes] | None
) -> bytes:
    """The header lines (each CRLF + line, no final CRLF) that may be forwarded."""
    block = head.raw[head.line_end : -4]
    if head.droppable:
        if head.droppable == 1 and head.connection in _CONNECTION_LINES:
            # The usual case, a lone "Connection: keep-alive": remove it without the regex.
            trimmed = block.replace(_CONNECTION_LINES[head.connection], b"", 1)
            if len(trimmed) < len(block):
                return trimmed if remove is None else remove.sub(b"", trimmed)
        block = drop.sub(b"", block)
        extra = head.extra_hop_by_hop()
        if extra:
            block = names_pattern(extra).sub(b"", block)
    if remove is not None:
        block = remove.sub(b"", block)
    return block


class RequestForwarding:
    """Per-listener constants for forwarding a request upstream."""

    __slots__ = ("proto_line",)

    def __init__(self, scheme: bytes) -> None:
        self.proto_line = b"\r\nX-Forwarded-Proto: " + scheme


def upstream_request_head(
    head: RequestHead,
    forwarding: RequestForwarding,
    peer_ip: bytes,
    client_ip: bytes,
    target: bytes,
    host: bytes | None,
    added: bytes = b"",
    remove: re.Pattern[bytes] | None = None,
) -> bytes:
    """The head to send upstream.

    `peer_ip` (who connected to us) is appended to X-Forwarded-For; `client_ip` (the same,
    unless a trusted proxy told us otherwise) goes in X-Real-IP. `target` is the (possibly
    rewritten) path and query; `host` replaces Host when not None; `added` is extra header
    lines ("\\r\\nName: value" each) and `remove` matches lines to drop, both from the
    route's header rules.
    """
    if head.droppable or remove is not None:
        block = _header_block(head, _REQUEST_DROP, remove)
    else:
        block = head.raw[head.line_end : -4]
    if host is not None:
        block = _HOST.sub(b"", block) + b"\r\nHost: " + host
    forwarded_for = head.forwarded_for
    via = head.via
    return b"".join((
        head.method,
        b" ",
        target,
        b" HTTP/1.1",
        block,
        b"\r\nX-Forwarded-For: ",
        forwarded_for + b", " + peer_ip if forwarded_for else peer_ip,
        forwarding.proto_line,
        b"\r\nX-Forwarded-Host: " + head.host if head.host else b"",
        b"\r\nX-Real-IP: ",
        client_ip,
        b"\r\nVia: " + via + b", " + VIA if via else _VIA_LINE,
        b"\r\nTransfer-Encoding: chunked" if head.chunked else b"",
        b"\r\nConnection: upgrade\r\nUpgrade: " + head.upgrade if head.wants_upgrade else b"",
        added,
        b"\r\n\r\n",
    ))  # fmt: skip


def downstream_response_head(
    head: ResponseHead,
    chunked: bool,
    close: bool,
    keep_alive_1_0: bool,
    added: bytes = b"",
    remove: re.Pattern[bytes] | None = None,
) -> bytes:
    """The head to send the client: hop-by-hop removed, framing and Connection set by us."""
    raw = head.raw
    line_end = head.line_end
    if head.droppable or remove is not None:
        block = _header_block(head, _RESPONSE_DROP, remove)
    else:
        block = raw[line_end:-4]
    via = head.via
    if head.status == 101:
        connection = b"\r\nConnection: upgrade\r\nUpgrade: " + head.upgrade
    elif close:
        connection = b"\r\nConnection: close"
    elif keep_alive_1_0:
        connection = b"\r\nConnection: keep-alive"
    else:
        connection = b""
    return b"".join((
        b"HTTP/1.1",
        raw[8:line_end],  # " 200 OK"
        block,
        b"\r\nVia: " + via + b", " + VIA if via else _VIA_LINE,
        b"\r\nTransfer-Encoding: chunked" if chunked else b"",
        connection,
        added,
        b"\r\n\r\n",
    ))  # fmt: skip
