"""Where a failed exchange went wrong, so logs and metrics can say who to blame."""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    DOWNSTREAM = "downstream"  # the client: malformed request, hung up, too slow
    UPSTREAM = "upstream"  # the target: refused, timed out, broke the response
    INTERNAL = "internal"  # Bascule itself


class ProxyError(Exception):
    """A failure with its source, the status to answer with if nothing was sent yet, and
    whether sending the request to another target is safe."""

    def __init__(self, source: Source, status: int, message: str, *, retry_safe: bool = False):
        super().__init__(message)
        self.source = source
        self.status = status
        self.message = message
        self.retry_safe = retry_safe
