"""Where a failed exchange went wrong, so logs and metrics can say who to blame."""

from __future__ import annotations

from enum import StrEnum

from bascule.upstream.retry_policy import Kind

__all__ = ["Kind", "ProxyError", "Source"]


class Source(StrEnum):
    DOWNSTREAM = "downstream"  # the client: malformed request, hung up, too slow
    UPSTREAM = "upstream"  # the target: refused, timed out, broke the response
    INTERNAL = "internal"  # Bascule itself


class ProxyError(Exception):
    """A failure with its source, its kind, and the status to answer with if nothing was
    sent yet. `stale`: a reused keep-alive connection turned out closed by the target, so
    the request never reached it."""

    def __init__(
        self,
        source: Source,
        status: int,
        message: str,
        *,
        kind: Kind = Kind.OTHER,
        stale: bool = False,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.status = status
        self.message = message
        self.kind = kind
        self.stale = stale
