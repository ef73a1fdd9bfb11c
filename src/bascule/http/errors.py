"""Protocol errors and the small, pre-encoded responses Bascule answers with itself."""

from __future__ import annotations

from functools import lru_cache
from http import HTTPStatus


class HttpError(Exception):
    """A message that cannot be accepted; `status` is what to answer the peer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@lru_cache(maxsize=256)
def status_line(status: int) -> bytes:
    """`HTTP/1.1 404 Not Found` (no CRLF), cached: statuses are few."""
    return b"HTTP/1.1 %d %s" % (status, status_phrase(status).encode())


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    close: bool = False,
    extra: bytes = b"",
    head_only: bool = False,
) -> bytes:
    """A complete response with a Content-Length; `head_only` omits the body (HEAD requests).

    `extra` holds more header lines, each as CRLF + "Name: value".
    """
    parts = [status_line(status), extra]
    if body or status not in (204, 304):
        parts.append(b"\r\nContent-Type: " + content_type)
        parts.append(b"\r\nContent-Length: %d" % len(body))
    if close:
        parts.append(b"\r\nConnection: close")
    parts.append(b"\r\n\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


@lru_cache(maxsize=128)
def error_body(status: int, message: str) -> bytes:
    """The short plain-text body of an error Bascule generates: status, then what happened."""
    return f"{status} {status_phrase(status)}: {message}\n".encode()
