"""Metrics across workers: a worker's counters, the snapshots it writes, and the node's
totals the admin process reads, with workers coming and going. Real files in a real
temporary directory; the exposition is read back with prometheus_client's own parser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bascule.admin.prometheus import exposition
from bascule.http.head import RequestHead
from bascule.proxy.exchange import Exchange
from bascule.proxy.route_plan import RoutePlan
from bascule.routing.actions import Respond
from bascule.routing.route import Route
from bascule.telemetry.metrics import DURATION_BUCKETS, ListenerMetrics, Series, WorkerMetrics
from bascule.telemetry.node import KEEP_FOLDED, TelemetryDir
from bascule.upstream.target import Target


class Live:
    def __init__(self, open_connections: int) -> None:
        self.connections = set(range(open_connections))


def exchange(
    plan: RoutePlan | None, target: Target | None, status: int, started: float
) -> Exchange:
    head = RequestHead(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "1.1", b"GET", b"/")
    ex = Exchange(head, started, ',"client":"127.0.0.1",')
    ex.plan, ex.target, ex.status = plan, target, status
    ex.bytes_in, ex.bytes_out = 10, 100
    return ex


def record(metrics: ListenerMetrics, ex: Exchange, ended: float) -> None:
    ex.ended = ended
    metrics.ended.append(ex)


def plan(name: str) -> RoutePlan:
    return RoutePlan(Route(name, Respond(200)), None)


def snapshot_of(pid: int, requests: int, *, connections: int = 0) -> dict[str, object]:
    """A worker's snapshot with `requests` 200s on route r of listener web."""
    return {
        "pid": pid,
        "requests": [["web", "r", "", "", 200, requests]],
        "durations": [["r", "", "", [requests] + [0] * len(DURATION_BUCKETS), 0.001 * requests]],
        "bytes": [["web", 0, 3 * requests]],
        "connections": [["web", connections]],
        "targets": [],
    }


def test_a_listener_counts_by_route_target_and_status_and_buckets_durations() -> None:
    metrics = ListenerMetrics("web")
    home, target = plan("home"), Target("127.0.0.1", 9000)
    for status, took in ((200, 0.002), (200, 0.03), (502, 2.0)):
        record(metrics, exchange(home, target, status, 100.0), 100.0 + took)
    record(metrics, exchange(None, None, 404, 100.0), 100.0)
    metrics.settle()
    assert metrics.series[home][target].by_status == {200: 2, 502: 1}
    assert metrics.series[None][None].by_status == {404: 1}
    series = metrics.series[home][target]
    assert series.buckets[0] == 1  # 2 ms: <= 5 ms
    assert series.buckets[DURATION_BUCKETS.index(0.05)] == 1  # 30 ms: <= 50 ms
    assert series.buckets[DURATION_BUCKETS.index(2.5)] == 1
    assert sum(series.buckets) == 3
    assert abs(series.seconds - 2.032) < 1e-9
    assert (metrics.bytes_in, metrics.bytes_out) == (40, 400)


def test_durations_on_a_bound_count_in_its_bucket_and_past_the_last_in_inf() -> None:
    series = Series()
    for seconds in (0.0, DURATION_BUCKETS[0], DURATION_BUCKETS[-1], DURATION_BUCKETS[-1] + 1):
        series.count(200, seconds)
    assert series.buckets[0] == 2  # le: a bound counts in its own bucket
    assert series.buckets[-2] == 1
    assert series.buckets[-1] == 1  # +Inf
    assert series.by_status == {200: 4}


def test_a_snapshot_names_everything_and_reads_the_gauges_now() -> None:
    worker = WorkerMetrics()
    metrics = ListenerMetrics("web")
    worker.add(metrics, Live(3))
    target = Target("127.0.0.1", 9000)
    record(metrics, exchange(plan("home"), target, 200, 1.0), 1.001)
    snapshot = worker.snapshot()
    assert snapshot["pid"] == os.getpid()
    assert snapshot["requests"] == [["web", "home", "", "127.0.0.1:9000", 200, 1]]
    assert snapshot["connections"] == [["web", 3]]
    assert snapshot["bytes"] == [["web", 10, 100]]


def test_the_node_adds_up_live_workers(tmp_path: Path) -> None:
    node = TelemetryDir(tmp_path)
    node.write_snapshot(snapshot_of(1, 5, connections=2))
    node.write_snapshot(snapshot_of(2, 7, connections=1))
    totals = node.totals()
    assert totals.requests == {("web", "r", "", "", 200): 12}
    assert totals.connections == {"web": 3}
    assert totals.workers == 2


def test_a_folded_worker_keeps_its_counts_and_loses_its_gauges(tmp_path: Path) -> None:
    node = TelemetryDir(tmp_path)
    node.write_snapshot(snapshot_of(1, 5, connections=2))
    node.write_snapshot(snapshot_of(2, 7, connections=1))
    node.fold(1)
    assert (tmp_path / "worker-1.json").exists()  # kept a while: a reader may be mid-scrape
    totals = node.totals()
    assert totals.requests == {("web", "r", "", "", 200): 12}  # counted once, not twice
    assert totals.connections == {"web": 1}
    assert totals.workers == 1
    node.fold(1)  # reaped twice: still once
    assert node.totals().requests == {("web", "r", "", "", 200): 12}


def test_folded_files_go_after_a_while_and_their_counts_stay(tmp_path: Path) -> None:
    node = TelemetryDir(tmp_path)
    node.write_snapshot(snapshot_of(1, 5))
    node.fold(1)
    retired = node.read("retired.json")
    retired["folded"]["1"] -= KEEP_FOLDED + 1  # folded long ago
    node.write("retired.json", retired)
    node.write_snapshot(snapshot_of(2, 1))
    node.fold(2)
    assert not (tmp_path / "worker-1.json").exists()
    assert node.totals().requests == {("web", "r", "", "", 200): 6}


def test_a_worker_that_never_wrote_folds_to_nothing(tmp_path: Path) -> None:
    node = TelemetryDir(tmp_path)
    node.fold(99)
    assert node.totals().requests == {}


def test_the_exposition_parses_as_prometheus_text(tmp_path: Path) -> None:
    node = TelemetryDir(tmp_path)
    node.write_snapshot(snapshot_of(1, 4, connections=2))
    node.write("node.json", {"reloads": {"ok": 3, "failed": 1}})
    families = {f.name: f for f in text_string_to_metric_families(exposition(node).decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    labels = (
        ("code", "200"),
        ("listener", "web"),
        ("route", "r"),
        ("target", ""),
        ("upstream", ""),
    )
    assert samples["bascule_requests_total", labels] == 4
    assert (
        samples["bascule_request_duration_seconds_count", (("route", "r"), ("upstream", ""))] == 4
    )
    le_inf = (("le", "+Inf"), ("route", "r"), ("upstream", ""))
    assert samples["bascule_request_duration_seconds_bucket", le_inf] == 4
    assert samples["bascule_active_connections", (("listener", "web"),)] == 2
    assert samples["bascule_config_reloads_total", (("result", "ok"),)] == 3
    assert samples["bascule_bytes_sent_total", (("listener", "web"),)] == 12
    assert families["bascule_requests"].type == "counter"
    assert families["bascule_request_duration_seconds"].type == "histogram"


def test_quantiles_interpolate_within_their_bucket() -> None:
    from bascule.admin.upstreams import quantile

    counts = [0] * (len(DURATION_BUCKETS) + 1)
    assert quantile(counts, 0.5) is None
    counts[1] = 10  # ten requests between 5 and 10 ms
    assert quantile(counts, 0.5) == pytest.approx(0.0075)
    counts[-1] = 10  # and ten beyond the last bound
    assert quantile(counts, 0.99) == DURATION_BUCKETS[-1]
