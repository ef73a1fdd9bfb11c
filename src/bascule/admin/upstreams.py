"""GET /api/upstreams: every target of the node, with its state and its recent traffic.

The admin process samples the node's totals once a second (`History`); rates, latency
percentiles and error rates are computed over the last `WINDOW` seconds of samples, so
they describe the traffic now, not since the start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from bascule.telemetry.metrics import DURATION_BUCKETS
from bascule.telemetry.node import NodeTotals, TelemetryDir
from bascule.upstream.health_board import HealthBoard, slot_key

__all__ = ["WINDOW", "History", "upstreams_document"]

WINDOW = 10.0  # seconds of samples the rates cover
SAMPLE_EVERY = 1.0

TargetKey = tuple[str, str]  # upstream, target


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    requests: dict[TargetKey, int]
    errors: dict[TargetKey, int]  # answered 5xx
    buckets: dict[TargetKey, list[int]]


def _sample(totals: NodeTotals, at: float) -> Sample:
    requests: dict[TargetKey, int] = {}
    errors: dict[TargetKey, int] = {}
    for (_, _, upstream, target, code), count in totals.requests.items():
        if not upstream:
            continue
        key = (upstream, target)
        requests[key] = requests.get(key, 0) + count
        if code >= 500:
            errors[key] = errors.get(key, 0) + count
    buckets: dict[TargetKey, list[int]] = {}
    for (_, upstream, target), (counts, _) in totals.durations.items():
        if upstream:
            old = buckets.get((upstream, target), [0] * len(counts))
            buckets[upstream, target] = [a + b for a, b in zip(old, counts, strict=True)]
    return Sample(at, requests, errors, buckets)


class History:
    """The node's totals, sampled every second, the last WINDOW seconds of them kept."""

    def __init__(self, directory: TelemetryDir) -> None:
        self.directory = directory
        self.samples: deque[Sample] = deque(maxlen=int(WINDOW / SAMPLE_EVERY) + 1)

    def take(self) -> tuple[NodeTotals, Sample]:
        totals = self.directory.totals()
        sample = _sample(totals, time.monotonic())
        self.samples.append(sample)
        return totals, sample

    async def keep(self) -> None:
        while True:
            self.take()
            await asyncio.sleep(SAMPLE_EVERY)


def quantile(buckets: list[int], q: float) -> float | None:
    """The q-quantile (0-1) in seconds of a histogram's counts, interpolated in its bucket
    as Prometheus's histogram_quantile does; None without observations."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for upper, count in zip((*DURATION_BUCKETS, float("inf")), buckets, strict=True):
        if seen + count >= rank and count:
            if upper == float("inf"):
                return lower  # beyond the last bound: the best known is that bound
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper if upper != float("inf") else lower
    return lower


def upstreams_document(
    history: History, board: HealthBoard | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The document GET /api/upstreams answers."""
    totals, now = history.take()
    first = history.samples[0]
    seconds = max(now.at - first.at, 1e-9)
    upstreams: dict[str, list[dict[str, Any]]] = {}
    for (upstream, target), live in sorted(totals.targets.items()):
        key = (upstream, target)
        done = now.requests.get(key, 0) - first.requests.get(key, 0)
        failed = now.errors.get(key, 0) - first.errors.get(key, 0)
        recent = [
            a - b
            for a, b in zip(
                now.buckets.get(key, [0] * (len(DURATION_BUCKETS) + 1)),
                first.buckets.get(key, [0] * (len(DURATION_BUCKETS) + 1)),
                strict=True,
            )
        ]
        p50, p99 = quantile(recent, 0.5), quantile(recent, 0.99)
        upstreams.setdefault(upstream, []).append(
            {
                "name": target,
                "state": _state(live.up, live.held_by),
                "held_by": sorted(live.held_by),
                "weight": live.weight,
                "in_flight": live.in_flight,
                "requests_total": now.requests.get(key, 0),
                "requests_per_second": round(done / seconds, 2)
                if len(history.samples) > 1
                else 0.0,
                "p50_ms": None if p50 is None else round(p50 * 1000, 2),
                "p99_ms": None if p99 is None else round(p99 * 1000, 2),
                "error_rate": round(failed / done, 4) if done else 0.0,
                "health": _health(board, upstream, target),
                "override": overrides.get(f"{upstream}/{target}"),
            }
        )
    return {
        "window_seconds": round(seconds, 1),
        "upstreams": [{"name": name, "targets": targets} for name, targets in upstreams.items()],
    }


def _state(up: int, held_by: set[str]) -> str:
    """up; or why not: draining, disabled (an operator), down (health), ejected."""
    if up:
        return "up"
    for holder, state in (
        ("draining", "draining"),
        ("operator", "disabled"),
        ("health", "down"),
        ("outlier", "ejected"),
    ):
        if holder in held_by:
            return state
    return "down"


def _health(board: HealthBoard | None, upstream: str, target: str) -> dict[str, Any] | None:
    """What the node's health checks say of the target; None if it is not checked."""
    if board is None:
        return None
    key = slot_key(upstream, target)
    slot = board.find(key)
    entry = board.read(slot, key) if slot is not None else None
    if entry is None:
        return None
    return {"status": entry.status.value, "checks": entry.checks, "passed_in_a_row": entry.passed}
