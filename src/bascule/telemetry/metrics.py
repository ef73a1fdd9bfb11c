"""Request metrics of one worker: plain counters on the hot path, snapshots for the node.

A worker counts its own traffic in a `Series` per route plan and target, found by the
objects it already holds: a count by status and one histogram bucket per request, no lock,
nothing shared. Once a second, and once more as it exits, it writes a snapshot of its
totals since it started (`Snapshot`, JSON) to the node's telemetry directory
(`telemetry.node`), where the admin process adds up every worker's into one set of series.

Label values are bounded by the config: listener, route, upstream and target names and the
status code; never a path or a client address.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bascule.proxy.exchange import Exchange
    from bascule.proxy.route_plan import RoutePlan
    from bascule.telemetry.access_log import AccessLog
    from bascule.upstream.target import Target
    from bascule.upstream.upstream import Upstream

__all__ = [
    "CONNECT_BUCKETS",
    "DURATION_BUCKETS",
    "ListenerMetrics",
    "Series",
    "Snapshot",
    "WorkerMetrics",
]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the request-duration histogram's buckets; +Inf follows."""

CONNECT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds (seconds) of the upstream-connect histogram's buckets; +Inf follows."""

Snapshot = dict[str, Any]
"""A worker's totals as JSON: see `WorkerMetrics.snapshot` for the keys."""


class _Live(Protocol):
    """What a listener context offers the snapshot: its open connections."""

    connections: set[Any]


SETTLE_AFTER = 0.5
"""Seconds an ended exchange may wait in `ListenerMetrics.ended` before it is counted and
logged; `SETTLE_BATCH` ended exchanges are settled at once."""
SETTLE_BATCH = 64


class Series:
    """The requests of one route plan and target: a count by status, and their durations
    as a histogram (the admin API shows a target's latency; /metrics adds up its route's)."""

    __slots__ = ("_bounds", "buckets", "by_status", "seconds")

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # per bound in order, then +Inf
        self.seconds = 0.0  # their sum
        # an attribute: compiled code reads it directly and compares its floats unboxed (a
        # global is a dict lookup; a Final tuple literal would be rebuilt at each use)
        self._bounds: tuple[float, ...] = DURATION_BUCKETS

    def count(self, status: int, seconds: float) -> None:
        by_status = self.by_status
        by_status[status] = by_status.get(status, 0) + 1
        self.buckets[bucket_of(self._bounds, seconds)] += 1
        self.seconds += seconds


def bucket_of(bounds: tuple[float, ...], seconds: float) -> int:
    """The histogram bucket `seconds` counts in: the first of the upper `bounds` it does not
    exceed, or len(bounds) (+Inf). A loop from the start: most values fall in the first."""
    bucket = 0
    for bound in bounds:
        if seconds <= bound:
            break
        bucket += 1
    return bucket


class ListenerMetrics:
    """The counters of one listener in one worker.

    Exchanges that end are appended to `ended` (all the hot path does) and settled in
    batches: counted here and written to the access log, at the latest SETTLE_AFTER later,
    and before every snapshot.
    """

    __slots__ = (
        "_access_log",
        "_settling",
        "bytes_in",
        "bytes_out",
        "cache",
        "connects",
        "ended",
        "live",
        "name",
        "retries",
        "series",
    )

    def __init__(self, name: str, access_log: AccessLog | None = None) -> None:
        self.name = name
        self._access_log = access_log
        self.ended: list[Exchange] = []  # each with `ended` set; see `settle_later`
        self._settling: asyncio.TimerHandle | None = None
        # by route plan, then target (two lookups of objects hashed by identity: cheaper
        # than making and hashing a tuple key per request)
        self.series: dict[RoutePlan | None, dict[Target | None, Series]] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.live: _Live | None = None  # the listener context, for its connection count
        self.retries: dict[str, int] = {}  # by upstream: tries after the first
        self.cache: dict[tuple[str, str], int] = {}  # by route and lookup result
        # by upstream: new connections' setup times (TCP, and TLS when used) as a histogram
        self.connects: dict[str, list[float]] = {}

    def settle_later(self) -> None:
        """The first exchange was appended to `ended`: settle within SETTLE_AFTER. (The
        one who appends calls `settle` at once when SETTLE_BATCH are waiting.)"""
        if self._settling is None:
            self._settling = asyncio.get_running_loop().call_later(SETTLE_AFTER, self.settle)

    def settle(self) -> None:
        """Count every exchange in `ended`, and log it."""
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        ended = self.ended
        if not ended:
            return
        self.ended = []
        series_by_plan = self.series
        bytes_in = bytes_out = 0
        for ex in ended:
            by_target = series_by_plan.get(ex.plan)
            if by_target is None:
                by_target = series_by_plan[ex.plan] = {}
            series = by_target.get(ex.target)
            if series is None:
                series = by_target[ex.target] = Series()
            series.count(ex.status, ex.ended - ex.started)
            bytes_in += ex.bytes_in
            bytes_out += ex.bytes_out
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        if self._access_log is not None:
            self._access_log.write_exchanges(ended)

    def retried(self, upstream: str) -> None:
        self.retries[upstream] = self.retries.get(upstream, 0) + 1

    def looked_up(self, route: str, result: str) -> None:
        key = (route, result)
        self.cache[key] = self.cache.get(key, 0) + 1

    def connected(self, upstream: str, seconds: float) -> None:
        histogram = self.connects.get(upstream)
        if histogram is None:
            histogram = self.connects[upstream] = [0.0] * (len(CONNECT_BUCKETS) + 2)
        histogram[bucket_of(CONNECT_BUCKETS, seconds)] += 1
        histogram[-1] += seconds


class WorkerMetrics:
    """Every listener's counters in one worker, and the upstreams whose targets it reports."""

    def __init__(self) -> None:
        self.listeners: list[ListenerMetrics] = []
        self.upstreams: list[Upstream] = []
        self.purged = (0, 0)  # the last cache purge carried out, and the keys it removed
        self.ejections: dict[str, int] = {}  # by upstream, from outlier detection

    def settle(self) -> None:
        """Count and log every exchange that has ended (before a snapshot, at exit)."""
        for listener in self.listeners:
            listener.settle()

    def ejected(self, upstream: str) -> None:
        self.ejections[upstream] = self.ejections.get(upstream, 0) + 1

    def add(self, metrics: ListenerMetrics, live: _Live) -> None:
        """Report a listener's counters, and the connections `live` has open."""
        metrics.live = live
        self.listeners.append(metrics)

    def watch_upstreams(self, upstreams: Iterable[Upstream]) -> None:
        self.upstreams = list(upstreams)

    def snapshot(self) -> Snapshot:
        """The totals since this worker started, and its gauges now:

        - `requests`: [listener, route, upstream, target, code, count]
        - `durations`: [route, upstream, target, [count per bucket..., +Inf], sum of seconds]
        - `bytes`: [listener, received, sent]
        - `connections`: [listener, open now]
        - `targets`: [upstream, target, available now (0/1), in flight now, weight,
          who holds it out now (health, outlier, draining, operator)]
        - `purged`: [the last cache purge carried out, keys it removed]
        - `retries`: [upstream, count]; `ejections`: [upstream, count];
          `cache`: [route, result, count]; `connects`: [upstream, [bucket counts], sum]
        """
        self.settle()
        requests, durations, transferred, connections = [], [], [], []
        retries: dict[str, int] = {}
        cache: dict[tuple[str, str], int] = {}
        connects: dict[str, list[float]] = {}
        for listener in self.listeners:
            name = listener.name
            for plan, by_target in listener.series.items():
                route, upstream = _names(plan)
                for target, series in by_target.items():
                    target_name = _name(target)
                    for code, count in series.by_status.items():
                        requests.append([name, route, upstream, target_name, code, count])
                    durations.append(
                        [route, upstream, target_name, list(series.buckets), series.seconds]
                    )
            transferred.append([name, listener.bytes_in, listener.bytes_out])
            _merge(retries, listener.retries)
            _merge(cache, listener.cache)
            for upstream_name, histogram in listener.connects.items():
                old = connects.get(upstream_name, [0.0] * len(histogram))
                connects[upstream_name] = [a + b for a, b in zip(old, histogram, strict=True)]
            live = listener.live
            connections.append([name, len(live.connections) if live is not None else 0])
        targets = [
            [
                upstream.name,
                t.name,
                int(t.state.available),
                t.state.in_flight,
                t.weight,
                list(t.state.held_by),
            ]
            for upstream in self.upstreams
            for t in upstream.targets
        ]
        return {
            "pid": os.getpid(),
            "written": time.time(),
            "requests": requests,
            "durations": durations,
            "bytes": transferred,
            "connections": connections,
            "targets": targets,
            "purged": list(self.purged),
            "retries": [[u, n] for u, n in retries.items()],
            "ejections": [[u, n] for u, n in self.ejections.items()],
            "cache": [[route, result, n] for (route, result), n in cache.items()],
            "connects": [[u, [int(n) for n in h[:-1]], h[-1]] for u, h in connects.items()],
        }


def _merge(into: dict[Any, int], counts: dict[Any, int]) -> None:
    for key, count in counts.items():
        into[key] = into.get(key, 0) + count


def _name(target: Target | None) -> str:
    return target.name if target is not None else ""


def _names(plan: RoutePlan | None) -> tuple[str, str]:
    """(route, upstream) of a plan; "" where there is none (a 404, a local answer)."""
    if plan is None:
        return "", ""
    upstream = plan.upstream
    return plan.name, upstream.name if upstream is not None else ""
