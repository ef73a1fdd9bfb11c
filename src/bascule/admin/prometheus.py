"""/metrics: the node's series in the Prometheus text format, from the telemetry directory.

A `prometheus_client` collector that reads every worker's totals at each scrape
(`TelemetryDir.totals`), so one node exposes one set of series however many workers serve,
and its counters never go down across reloads and worker restarts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bascule.telemetry.metrics import CONNECT_BUCKETS, DURATION_BUCKETS
from bascule.telemetry.node import NodeTotals, TelemetryDir

__all__ = ["CONTENT_TYPE", "NodeCollector", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BOUNDS = [f"{bound:g}" for bound in DURATION_BUCKETS] + ["+Inf"]
_CONNECT_BOUNDS = [f"{bound:g}" for bound in CONNECT_BUCKETS] + ["+Inf"]


class NodeCollector(Collector):
    def __init__(self, directory: TelemetryDir) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        totals = self.directory.totals()
        requests = CounterMetricFamily(
            "bascule_requests",
            "Requests answered, by listener, route, upstream, target and status code.",
            labels=["listener", "route", "upstream", "target", "code"],
        )
        for (listener, route, upstream, target, code), count in sorted(totals.requests.items()):
            requests.add_metric([listener, route, upstream, target, str(code)], count)
        yield requests

        yield from _counters(totals)
        connects = HistogramMetricFamily(
            "bascule_upstream_connect_duration_seconds",
            "Time to open a new connection to a target (TCP, and TLS when used), by upstream.",
            labels=["upstream"],
        )
        for upstream, (buckets, seconds) in sorted(totals.connects.items()):
            connects.add_metric([upstream], _cumulative(_CONNECT_BOUNDS, buckets), seconds)
        yield connects

        durations = HistogramMetricFamily(
            "bascule_request_duration_seconds",
            "Time from the request head to the last response byte, by route and upstream.",
            labels=["route", "upstream"],
        )
        by_route: dict[tuple[str, str], tuple[list[int], float]] = {}
        for (route, upstream, _), (buckets, seconds) in totals.durations.items():
            old, total = by_route.get((route, upstream), ([0] * len(buckets), 0.0))
            by_route[route, upstream] = (
                [a + b for a, b in zip(old, buckets, strict=True)],
                total + seconds,
            )
        for (route, upstream), (buckets, seconds) in sorted(by_route.items()):
            durations.add_metric([route, upstream], _cumulative(_BOUNDS, buckets), seconds)
        yield durations

        received = CounterMetricFamily(
            "bascule_bytes_received",
            "Request body bytes received, by listener.",
            labels=["listener"],
        )
        sent = CounterMetricFamily(
            "bascule_bytes_sent", "Response body bytes sent, by listener.", labels=["listener"]
        )
        for listener, (bytes_in, bytes_out) in sorted(totals.transferred.items()):
            received.add_metric([listener], bytes_in)
            sent.add_metric([listener], bytes_out)
        yield received
        yield sent

        connections = GaugeMetricFamily(
            "bascule_active_connections", "Client connections open now.", labels=["listener"]
        )
        for listener, count in sorted(totals.connections.items()):
            connections.add_metric([listener], count)
        yield connections

        up = GaugeMetricFamily(
            "bascule_target_up",
            "1 if the target takes new requests (in at least one worker), else 0.",
            labels=["upstream", "target"],
        )
        in_flight = GaugeMetricFamily(
            "bascule_target_in_flight",
            "Requests in flight to the target now.",
            labels=["upstream", "target"],
        )
        for (upstream, target), live in sorted(totals.targets.items()):
            up.add_metric([upstream, target], live.up)
            in_flight.add_metric([upstream, target], live.in_flight)
        yield up
        yield in_flight

        status = self.directory.read("node.json") or {}
        reloads = CounterMetricFamily(
            "bascule_config_reloads", "Reloads of the config file, by result.", labels=["result"]
        )
        for result in ("ok", "failed"):
            reloads.add_metric([result], status.get("reloads", {}).get(result, 0))
        yield reloads
        workers = GaugeMetricFamily("bascule_workers", "Worker processes reporting now.")
        workers.add_metric([], totals.workers)
        yield workers


def _cumulative(bounds: list[str], buckets: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus's cumulative `le` buckets."""
    cumulative, running = [], 0
    for bound, count in zip(bounds, buckets, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    return cumulative


def _counter(name: str, text: str, labels: list[str], counts: dict[Any, int]) -> Metric:
    family = CounterMetricFamily(name, text, labels=labels)
    for key, count in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
    return family


def _counters(totals: NodeTotals) -> Iterator[Metric]:
    """Retries, ejections and cache lookups."""
    yield _counter(
        "bascule_retries",
        "Requests sent again after a failed try, by upstream.",
        ["upstream"],
        totals.retries,
    )
    yield _counter(
        "bascule_ejections",
        "Targets ejected by outlier detection (in any worker), by upstream.",
        ["upstream"],
        totals.ejections,
    )
    yield _counter(
        "bascule_cache_requests",
        "Requests a route's cache looked up, by route and result "
        "(hit, miss, stale, bypass, unavailable).",
        ["route", "result"],
        totals.cache,
    )


def exposition(directory: TelemetryDir) -> bytes:
    """The text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(directory))
    return generate_latest(registry)
