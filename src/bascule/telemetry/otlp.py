"""Spans to an OpenTelemetry collector (OTLP over HTTP), for requests that came in a
sampled trace. Optional: `pip install 'bascule[otel]'`.

A request whose `traceparent` says "sampled" gets one server span, recorded when the
exchange ends: the trace and the caller's span from the header, as its own span id the
one sent to the target as the next parent (so the target's spans nest under it), the
route, upstream, target, method, path and status as attributes, and an error status for a
5xx. Spans go out in batches from a background thread (the SDK's BatchSpanProcessor), so
the event loop never waits on the collector. Requests outside a sampled trace cost
nothing here.
"""

from __future__ import annotations

import time
from time import monotonic
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from bascule import __version__

if TYPE_CHECKING:
    from bascule.proxy.exchange import Exchange

__all__ = ["OtlpSpans"]

EXPORT_EVERY_MS = 1000.0


class OtlpSpans:
    """One worker's spans, batched to the collector at `endpoint`."""

    def __init__(self, endpoint: str, service_name: str) -> None:
        self._processor = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=EXPORT_EVERY_MS
        )
        self._resource = Resource.create(
            {"service.name": service_name, "service.version": __version__}
        )

    def record(self, ex: Exchange) -> None:
        """The exchange ended: its span, if its trace is sampled."""
        hop = ex.hop
        if hop is None or not hop.sampled:
            return
        now = time.time_ns()
        started = now - int((monotonic() - ex.started) * 1e9)
        flags = TraceFlags(int(hop.flags, 16))
        trace_id = int(hop.trace_id, 16)
        plan = ex.plan
        head = ex.head
        attributes: dict[str, str | int] = {
            "http.request.method": head.method.decode("latin-1"),
            "url.path": head.path.decode("latin-1"),
            "http.response.status_code": ex.status,
        }
        if plan is not None:
            attributes["bascule.route"] = plan.name
            if plan.upstream is not None:
                attributes["bascule.upstream"] = plan.upstream.name
        if ex.target is not None:
            attributes["bascule.target"] = ex.target.name
        if ex.request_id:
            attributes["bascule.request_id"] = ex.request_id.decode("ascii")
        route = plan.name if plan is not None else "unrouted"
        span = ReadableSpan(
            name=f"{attributes['http.request.method']} {route}",
            context=SpanContext(trace_id, int(hop.span_id, 16), is_remote=False, trace_flags=flags),
            parent=SpanContext(trace_id, int(hop.parent_id, 16), is_remote=True, trace_flags=flags),
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.SERVER,
            status=Status(StatusCode.ERROR) if ex.status >= 500 else Status(StatusCode.UNSET),
            start_time=started,
            end_time=now,
        )
        self._processor.on_end(span)

    def close(self) -> None:
        """Send what is still batched, then stop the exporting thread."""
        self._processor.shutdown()  # type: ignore[no-untyped-call]
