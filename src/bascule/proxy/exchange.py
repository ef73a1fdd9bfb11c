"""The Exchange: one request and its response as they pass through, seen by every phase."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bascule.balancing import PickContext
from bascule.http.head import RequestHead

if TYPE_CHECKING:
    from bascule.proxy.errors import ProxyError
    from bascule.proxy.route_plan import RoutePlan
    from bascule.proxy.upstream_connection import UpstreamConnection
    from bascule.upstream.target import Target


class Exchange:
    __slots__ = (
        "attempts",
        "bytes_in",
        "bytes_out",
        "close_after",
        "error",
        "head",
        "local",
        "pending",
        "pick",
        "plan",
        "request_done",
        "response_chunked",
        "response_done",
        "response_started",
        "started",
        "status",
        "target",
        "upstream_conn",
        "upstream_started",
    )

    def __init__(self, head: RequestHead, started: float) -> None:
        """`started` and `upstream_started` are time.monotonic() readings."""
        self.head = head
        self.started = started
        self.plan: RoutePlan | None = None
        self.target: Target | None = None
        self.upstream_conn: UpstreamConnection | None = None
        self.pick: PickContext | None = None
        self.upstream_started = 0.0
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.request_done = False
        self.response_started = False
        self.response_done = False
        self.response_chunked = False
        self.close_after = False  # the client connection closes when this exchange ends
        self.local = False  # Bascule answers itself: request body bytes are discarded
        self.pending: list[bytes] = []  # request bytes waiting for an upstream connection
        self.error: ProxyError | None = None
        self.attempts = 1
