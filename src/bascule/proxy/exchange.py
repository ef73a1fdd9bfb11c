"""The Exchange: one request and its response as they pass through, seen by every phase."""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from bascule.balancing import PickContext
from bascule.http.head import RequestHead

if TYPE_CHECKING:
    from bascule.filters.cache import CacheExchange
    from bascule.filters.compress import Encoder
    from bascule.http.tracing import Hop
    from bascule.proxy.errors import ProxyError
    from bascule.proxy.route_plan import RoutePlan
    from bascule.proxy.upstream_connection import UpstreamConnection
    from bascule.upstream.admission import Waiter
    from bascule.upstream.target import Target


class Exchange:
    __slots__ = (
        "admitted",
        "attempt_started",
        "attempts",
        "bytes_in",
        "bytes_out",
        "cache",
        "close_after",
        "encoder",
        "ended",
        "error",
        "first_byte_after",
        "head",
        "hop",
        "local",
        "log_prefix",
        "pending",
        "pick",
        "plan",
        "replay",
        "request_done",
        "request_id",
        "response_chunked",
        "response_done",
        "response_started",
        "started",
        "status",
        "target",
        "trace_lines",
        "upstream_conn",
        "upstream_started",
        "waiter",
    )

    def __init__(self, head: RequestHead, started: float, log_prefix: str) -> None:
        """`started`, `upstream_started` and `ended` are time.monotonic() readings;
        `log_prefix` is the client's part of its access-log line (`AccessLog.client_prefix`)."""
        self.head = head
        self.started = started
        self.log_prefix = log_prefix
        self.ended = 0.0
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
        self.pending: list[bytes] | None = None  # request bytes waiting for a connection
        self.replay: list[bytes] | None = None  # the request body as sent, kept for a retry
        self.error: ProxyError | None = None
        self.attempts = 1
        self.attempt_started = 0.0  # monotonic(); 0 when no attempt is reported to its target
        self.first_byte_after = 0.0  # seconds from attempt_started to the response head
        self.admitted: Target | None = None  # the target whose max_conns this try counts in
        self.waiter: Waiter | None = None  # its place in the upstream's queue, while waiting
        self.encoder: Encoder | None = None  # compresses the response body (compress:)
        self.cache: CacheExchange | None = None  # the route cache's part in it (cache:)
        self.request_id = b""  # X-Request-Id; b"" when request ids are off
        self.trace_lines = b""  # X-Request-Id and traceparent lines for the target
        self.hop: Hop | None = None  # its span in the caller's trace, if it came in one

    def hold(self, data: bytes) -> None:
        """Keep request bytes until a connection to the target takes them."""
        if self.pending is None:
            self.pending = [data]
        else:
            self.pending.append(data)

    def end_attempt(self, *, ok: bool) -> None:
        """Tell the target the request it was given is over; once per attempt.

        Its response time is the time to the response head when there was one: a long
        download or a WebSocket says nothing about how fast the target answers, yet stays
        in flight until it ends."""
        if self.attempt_started and self.target is not None:
            seconds = self.first_byte_after or monotonic() - self.attempt_started
            self.target.state.finish(seconds, ok)
        self.attempt_started = self.first_byte_after = 0.0
        admitted = self.admitted
        if admitted is not None:
            self.admitted = None
            plan = self.plan
            assert plan is not None and plan.upstream is not None
            admission = plan.upstream.admission
            assert admission is not None  # it admitted this try
            admission.leave(admitted)
