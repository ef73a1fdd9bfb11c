"""Spans over OTLP/HTTP to a collector made here: a real HTTP server that decodes the
protobuf requests the exporter sends, as an OpenTelemetry collector would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from e2e.backends import echo
from e2e.proxy import Proxy, config, wait_until
from e2e.wire import Wire

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"


class Collector:
    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, object], Span]] = []  # (resource attributes, span)
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    resource = {
                        a.key: a.value.string_value for a in resource_spans.resource.attributes
                    }
                    for scope in resource_spans.scope_spans:
                        collector.spans += [(resource, span) for span in scope.spans]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def send(port: int, traceparent: str | None) -> str:
    """One request; the traceparent the target received."""
    lines = "GET /orders?id=7 HTTP/1.1\r\nHost: a\r\n"
    if traceparent is not None:
        lines += f"traceparent: {traceparent}\r\n"
    with Wire(port) as wire:
        response = wire.request((lines + "\r\n").encode())
    headers = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
    return str(headers.get("traceparent", ""))


def test_a_sampled_request_becomes_a_span_of_its_trace(backend, tmp_path: Path, collector):
    log = tmp_path / "access.log"
    cfg = {
        **config(backend(echo)),
        "tracing": {"otlp_endpoint": collector.url, "service_name": "edge"},
        "access_log": {"path": str(log)},
    }
    proxy = Proxy(cfg, log)
    try:
        sent_on = send(proxy.port, f"00-{TRACE_ID}-{CALLER}-01")
        send(proxy.port, f"00-{TRACE_ID}-{CALLER}-00")  # not sampled: no span
        send(proxy.port, None)  # no trace: no span
    finally:
        proxy.stop()  # flushes the batch
    assert wait_until(lambda: len(collector.spans) >= 1, timeout=5)
    (resource, span), *more = collector.spans
    assert more == []
    assert resource["service.name"] == "edge"
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == CALLER
    assert sent_on == f"00-{TRACE_ID}-{span.span_id.hex()}-01"  # the target nests under it
    assert span.name == "GET app"
    assert span.kind == Span.SpanKind.SPAN_KIND_SERVER
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["url.path"].string_value == "/orders"
    assert attributes["bascule.upstream"].string_value == "app"
    assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
