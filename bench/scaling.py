"""Scaling benchmark: req/s with `workers: 2` against `workers: 1`, Bascule beside nginx.

Run from the repository root:

    .venv/bin/python bench/scaling.py [--duration 5s] [--rounds 2] [--connections 64]
                                      [--keep-tmp]

Four proxies in front of the same two backends: nginx and Bascule, each with 1 and with 2
worker processes, measured in turn (interleaved in each round) with wrk's `host` profile
of bench/run.py. Nothing is pinned: on a machine with 2 CPUs the proxy's workers, wrk and
the backends share them, so neither proxy can double; the figure to read is how Bascule
scales beside how nginx scales on the same machine in the same run. The proxy's CPU per
request (all its processes) shows what a second worker costs. Results: printed, and
bench/results/scaling.md.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import run as harness
from run import Pinning, Service, SideBySide, Tools

RESULTS_FILE = harness.BENCH_DIR / "results" / "scaling.md"
PROXIES = ("nginx", "bascule")
WORKERS = (1, 2)
UNPINNED = Pinning([], [], "none: proxies, wrk and backends share every CPU")


@dataclass(frozen=True)
class Run:
    round: int
    proxy: str
    workers: int
    rps: float
    requests: int
    errors: int
    us_per_req: float | None
    p99_ms: float


def start_proxies(
    opts: SideBySide, tools: Tools, tmp: Path, services: list[Service]
) -> dict[tuple[str, int], Service]:
    backends = [harness.start_backend(tools, n, tmp, UNPINNED) for n in ("backend1", "backend2")]
    services += backends
    for backend in backends:
        harness.wait_ready(backend)
    ports = (backends[0].port, backends[1].port)
    proxies: dict[tuple[str, int], Service] = {}
    for workers in WORKERS:
        name = f"nginx-{workers}w"
        proxies["nginx", workers] = harness.start_nginx_proxy(
            tools, tmp, UNPINNED, ports, workers, name
        )
        services.append(proxies["nginx", workers])
        name = f"bascule-{workers}w"
        proxies["bascule", workers] = harness.start_bascule(
            opts.bascule, tmp, UNPINNED, ports, workers, name
        )
        services.append(proxies["bascule", workers])
    for proxy in proxies.values():
        harness.wait_ready(proxy)
        print(f"# {proxy.name}: {shlex.join(proxy.command)}", flush=True)
        warm_up = harness.wrk_command(
            tools, UNPINNED, "host", proxy.port, harness.WARMUP_S, opts.connections
        )
        harness.run_wrk(warm_up, harness.WARMUP_S)
    return proxies


def measure(
    opts: SideBySide, tools: Tools, proxy: Service, key: tuple[str, int], round_no: int
) -> Run:
    result, us = harness.wrk_cost(tools, UNPINNED, opts, proxy)
    return Run(
        round_no, key[0], key[1], result.rps, result.requests, result.error_count, us, result.p99_ms
    )


def benchmark(opts: SideBySide, tools: Tools, tmp: Path, services: list[Service]) -> list[Run]:
    proxies = start_proxies(opts, tools, tmp, services)
    runs: list[Run] = []
    for round_no in range(1, opts.rounds + 1):
        for key, proxy in proxies.items():
            run = measure(opts, tools, proxy, key, round_no)
            runs.append(run)
            flag = f"  !! {run.errors} errors" if run.errors else ""
            print(
                f"round {round_no} {proxy.name:<11} {run.rps:>9,.0f} req/s  "
                f"{harness.fmt(run.us_per_req, '7.1f')} us/req{flag}",
                flush=True,
            )
            time.sleep(harness.PAUSE_BETWEEN_RUNS_S)
    return runs


def report(opts: SideBySide, tools: Tools, started: dt.datetime, runs: list[Run]) -> str:
    mu = harness.MU

    def median(proxy: str, workers: int, field: str) -> float | None:
        picked = [r for r in runs if (r.proxy, r.workers) == (proxy, workers)]
        return harness.median_or_none([getattr(r, field) for r in picked])

    lines = [
        "# Bascule scaling benchmark: 2 workers against 1",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Command: `{opts.command}`",
        f"- CPU: {harness.cpu_model()} ({os.cpu_count()} CPUs); nginx {tools.nginx_version}; "
        f"{tools.wrk_version}; Bascule tree: git {harness.git_revision()}",
        f"- {opts.rounds} round(s) of {opts.duration_s} s per run, wrk -t1 "
        f"-c{opts.connections} (host profile); pinning: {UNPINNED.note}",
        "",
        f"| proxy | 1 worker | 2 workers | scaling | {mu}s/req, 1 worker | {mu}s/req, 2 workers |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for proxy in PROXIES:
        one, two = median(proxy, 1, "rps"), median(proxy, 2, "rps")
        lines.append(
            f"| {proxy} | {harness.fmt(one, ',.0f')} | {harness.fmt(two, ',.0f')} | "
            f"{harness.ratio(two, one)} | {harness.fmt(median(proxy, 1, 'us_per_req'), '.1f')} | "
            f"{harness.fmt(median(proxy, 2, 'us_per_req'), '.1f')} |"
        )
    lines += [
        "",
        f"Errors over all runs: {sum(r.errors for r in runs)}.",
        "",
        f"| round | proxy | workers | req/s | requests | errors | {mu}s/req | p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.round} | {r.proxy} | {r.workers} | {r.rps:,.0f} | {r.requests:,} | {r.errors} | "
            f"{harness.fmt(r.us_per_req, '.1f')} | {r.p99_ms:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    opts = harness.parse_side_by_side(
        sys.argv[1:] if argv is None else argv, "Bascule vs nginx, 2 workers against 1"
    )

    def work(tmp: Path, services: list[Service]) -> str:
        tools = harness.find_tools()
        harness.warn_if_busy()
        started = dt.datetime.now().astimezone()
        runs = benchmark(opts, tools, tmp, services)
        return report(opts, tools, started, runs)

    return harness.run_benchmark("bascule-scaling-bench-", opts.keep_tmp, RESULTS_FILE, work)


if __name__ == "__main__":
    sys.exit(main())
