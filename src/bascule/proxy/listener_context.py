"""What every connection of one listener shares: routes, upstreams, limits, the log."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bascule.http.client_address import TrustedProxies
from bascule.http.forwarding import RequestForwarding
from bascule.proxy.route_plan import RoutePlan
from bascule.routing.route import Route
from bascule.routing.router import Router
from bascule.telemetry.access_log import AccessLog
from bascule.telemetry.metrics import ListenerMetrics

if TYPE_CHECKING:
    from bascule.proxy.downstream import DownstreamConnection
    from bascule.telemetry.otlp import OtlpSpans


class ListenerContext:
    __slots__ = (
        "access_log",
        "body_timeout",
        "client_certificates",
        "connections",
        "drained",
        "draining",
        "forwarding",
        "header_timeout",
        "keepalive_timeout",
        "max_body_bytes",
        "max_header_bytes",
        "max_uri_bytes",
        "metrics",
        "name",
        "plans",
        "redirect_https",
        "request_ids",
        "router",
        "scheme",
        "spans",
        "trusted_proxies",
    )

    def __init__(
        self,
        name: str,
        router: Router,
        plans: dict[Route, RoutePlan],
        access_log: AccessLog,
        *,
        scheme: bytes = b"http",
        header_timeout: float = 10.0,
        keepalive_timeout: float = 75.0,
        body_timeout: float = 60.0,
        max_header_bytes: int = 16 * 1024,
        max_uri_bytes: int = 8 * 1024,
        max_body_bytes: int = 100 * 1024 * 1024,
        trusted_proxies: TrustedProxies | None = None,
        redirect_https: int | None = None,
        client_certificates: bool = False,
        request_ids: bool = True,
    ) -> None:
        self.name = name
        self.router = router
        self.plans = plans
        self.access_log = access_log
        self.metrics = ListenerMetrics(name, access_log)
        self.scheme = scheme
        self.forwarding = RequestForwarding(scheme)
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.max_header_bytes = max_header_bytes
        self.max_uri_bytes = max_uri_bytes
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = trusted_proxies or TrustedProxies(())
        self.redirect_https = redirect_https  # the https port every request is sent to
        self.client_certificates = client_certificates  # verified ones: subject passed upstream
        self.request_ids = request_ids  # X-Request-Id and traceparent (http.tracing)
        self.spans: OtlpSpans | None = None  # spans of sampled requests (tracing:)
        self.connections: set[DownstreamConnection] = set()
        self.draining = False
        self.drained = asyncio.Event()  # set once draining and the last connection is gone

    def drain(self) -> None:
        """Stop keeping connections alive: idle ones close now, busy ones after their exchange."""
        self.draining = True
        for conn in list(self.connections):
            conn.close_if_idle()
        if not self.connections:
            self.drained.set()

    def forget(self, conn: DownstreamConnection) -> None:
        self.connections.discard(conn)
        if self.draining and not self.connections:
            self.drained.set()
