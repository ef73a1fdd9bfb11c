"""Fault tests with everything on: health checks, outlier detection and retries together
keep clients from noticing a target that hangs or flaps. Each prints its figures (run with
`-rP` to see them); docs/resilience.md records them."""

from __future__ import annotations

import asyncio
import time

from e2e.backends import Backend, Request, fixed, named, silent
from e2e.proxy import config
from e2e.test_retries import load

GUARDED = {
    "retries": {"attempts": 3, "on": ["connect_failure", "timeout", "reset", 502, 503, 504]},
    "outlier_detection": {"consecutive_failures": 2, "base_ejection": "1s"},
}


def flapping(period: float):
    """Healthy for `period` seconds, then failing (health checks and requests) as long."""
    born = time.monotonic()

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        failing = int((time.monotonic() - born) / period) % 2 == 1
        status = 503 if failing else 200
        return await fixed(status=status, body=b"flap")(request, writer)

    return respond


def tries(*targets: Backend) -> int:
    """Requests the targets got from clients (health checks not counted)."""
    return sum(1 for t in targets for r in t.requests if r.path != "/healthz")


def test_a_flapping_target_costs_clients_nothing(backend, bascule):
    flap = backend(flapping(0.15))
    steady = [backend(named(n)) for n in "ab"]
    upstream = {
        **GUARDED,
        "health": {"http": {"path": "/healthz"}, "interval": "50ms", "healthy": 2, "unhealthy": 2},
    }
    proxy = bascule(config(flap, *steady, upstream=upstream))
    started = time.monotonic()
    statuses = load(proxy.url(), 1000, workers=4)
    elapsed = time.monotonic() - started
    print(
        f"flapping target: {len(statuses)} requests in {elapsed:.1f}s, "
        f"{sum(s != 200 for s in statuses)} failed, {tries(flap)} reached the flapping "
        f"target, {tries(flap, *steady) - len(statuses)} retried"
    )
    assert statuses == [200] * 1000
    assert tries(flap) > 0  # it did take traffic while it was up


def test_a_target_that_never_answers_is_timed_out_ejected_and_costs_little(backend, bascule):
    hung = backend(silent, raw=True)
    good = [backend(named(n)) for n in "ab"]
    upstream = {
        **GUARDED,
        "retries": {**GUARDED["retries"], "per_try_timeout": "300ms"},
        "outlier_detection": {"consecutive_failures": 2, "base_ejection": "10s"},
        "timeouts": {"read": "2s"},
    }
    proxy = bascule(config(hung, *good, upstream=upstream))
    started = time.monotonic()
    statuses = load(proxy.url(), 300, workers=4)
    elapsed = time.monotonic() - started
    durations = sorted(line["duration_us"] / 1e6 for line in proxy.log_lines(300))
    p99 = durations[int(len(durations) * 0.99) - 1]
    print(
        f"hanging target: {len(statuses)} requests in {elapsed:.1f}s, "
        f"{sum(s != 200 for s in statuses)} failed, {hung.connections} connections to it, "
        f"p99 {p99 * 1000:.0f} ms (read timeout 2 s, per-try timeout 300 ms)"
    )
    assert statuses == [200] * 300
    # four workers can be stuck on it at once, and one more may be sent there between its
    # first and second timeout (2 failures in a row eject it); then it is left alone
    assert hung.connections <= 5
    assert p99 < 2.0
