"""Cache benchmark: Bascule's cache hits beside nginx `proxy_cache` hits, in one run.

Run from the repository root:

    .venv/bin/python bench/cache.py [--duration 5s] [--rounds 2] [--connections 64]
                                    [--keep-tmp]

Two nginx backends serve a 1 KB page with `Cache-Control: max-age=600`. In front of them,
with the pinning and CPU accounting of bench/run.py and one worker each: nginx with
`proxy_cache` (a keys zone, the cache files under the bench's temporary directory),
Bascule with `cache: {}` (memory), and Bascule with `store: redis` on a local
redis-server (pinned beside wrk; installed with apt-get when missing and root). After
one request warms each cache, wrk asks for the same URL: every request is a hit.
"proxied" runs each proxy without a cache for reference. Results: printed, and
bench/results/cache.md.
"""

from __future__ import annotations

import datetime as dt
import shlex
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import run as harness
from run import HOST, BenchError, CaseRun, Pinning, Service, SideBySide, Tools

RESULTS_FILE = harness.BENCH_DIR / "results" / "cache.md"
PAGE = "".join(f"<li>cached item {n}</li>\n" for n in range(40))
FRESH = '        add_header Cache-Control "max-age=600";'
CASES = (
    ("nginx", "proxied"),
    ("nginx", "hit"),
    ("bascule", "proxied"),
    ("bascule", "hit"),
    ("bascule", "redis hit"),
)


def start_proxies(
    opts: SideBySide, tools: Tools, pinning: Pinning, tmp: Path, services: list[Service]
) -> dict[tuple[str, str], Service]:
    backends = [
        harness.start_file_backend(tools, n, tmp, pinning, PAGE, FRESH)
        for n in ("backend1", "backend2")
    ]
    services += backends
    for backend in backends:
        harness.wait_ready(backend)
    ports = (backends[0].port, backends[1].port)
    cache_zone = tmp / "nginx-cache"
    redis_port = start_redis(tmp, pinning, services)
    redis_cache = f', cache: {{store: redis, redis: {{url: "redis://{HOST}:{redis_port}/0"}}}}'
    proxies = {
        ("nginx", "proxied"): harness.start_nginx_proxy(tools, tmp, pinning, ports),
        ("nginx", "hit"): harness.start_nginx_proxy(
            tools,
            tmp,
            pinning,
            ports,
            name="nginx-cache",
            http_extra=f"    proxy_cache_path {cache_zone} keys_zone=bench:10m;\n"
            "    proxy_cache bench;",
        ),
        ("bascule", "proxied"): harness.start_bascule(opts.bascule, tmp, pinning, ports),
        ("bascule", "hit"): harness.start_bascule(
            opts.bascule, tmp, pinning, ports, name="bascule-cache", route_extra=", cache: {}"
        ),
        ("bascule", "redis hit"): harness.start_bascule(
            opts.bascule, tmp, pinning, ports, name="bascule-redis", route_extra=redis_cache
        ),
    }
    services += proxies.values()
    for proxy in proxies.values():
        harness.wait_ready(proxy)  # its GET / warms the cache
        time.sleep(0.2)  # a Redis write goes in the background
        print(f"# {proxy.name}: {shlex.join(proxy.command)}", flush=True)
    return proxies


def start_redis(tmp: Path, pinning: Pinning, services: list[Service]) -> int:
    """A redis-server for the shared store, on the load CPU; its port."""
    server = harness.find_binary("redis-server")
    if server is None:
        harness.install_missing(["redis-server"])
        server = harness.find_binary("redis-server")
    if server is None:
        raise BenchError("redis-server is missing: `sudo apt-get install -y redis-server`")
    workdir = tmp / "redis"
    workdir.mkdir()
    port = harness.free_port()
    command = [*pinning.load, server, "--port", str(port), "--bind", HOST, "--save", ""]
    services.append(harness.start_service("redis", command, port, workdir, (signal.SIGTERM,)))
    deadline = time.monotonic() + harness.READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16) == b"+PONG\r\n":
                    return port
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"redis-server did not answer on port {port}")


def measure(
    opts: SideBySide,
    tools: Tools,
    pinning: Pinning,
    key: tuple[str, str],
    proxy: Service,
    round_no: int,
) -> CaseRun:
    result, us = harness.wrk_cost(tools, pinning, opts, proxy)
    return CaseRun(round_no, key[0], key[1], result.rps, result.error_count, us, result.p99_ms)


def report(
    opts: SideBySide, tools: Tools, pinning: Pinning, started: dt.datetime, runs: list[CaseRun]
) -> str:
    mu = harness.MU

    def median(proxy: str, case: str, field: str) -> float | None:
        return harness.case_median(runs, proxy, case, field)

    setup = f"pinning: {pinning.note}; body {len(PAGE.encode()):,} bytes, 1 worker each"
    lines = [
        *harness.report_head("Bascule cache benchmark", opts, tools, started, setup),
        f"| case | nginx req/s | Bascule req/s | ratio | nginx {mu}s/req | Bascule {mu}s/req |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in ("proxied", "hit", "redis hit"):
        n_rps, b_rps = median("nginx", case, "rps"), median("bascule", case, "rps")
        n_us, b_us = median("nginx", case, "us_per_req"), median("bascule", case, "us_per_req")
        lines.append(
            f"| {case} | {harness.fmt(n_rps, ',.0f')} | {harness.fmt(b_rps, ',.0f')} | "
            f"{harness.ratio(b_rps, n_rps)} | {harness.fmt(n_us, '.1f')} | "
            f"{harness.fmt(b_us, '.1f')} |"
        )
    lines += ["", *harness.case_runs_table(runs, "case")]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    opts = harness.parse_side_by_side(
        sys.argv[1:] if argv is None else argv, "Bascule vs nginx, answering from a cache"
    )

    def work(tmp: Path, services: list[Service]) -> str:
        tools, pinning, started = harness.prepare()
        proxies = start_proxies(opts, tools, pinning, tmp, services)
        runs = harness.run_cases(
            opts.rounds,
            CASES,
            lambda key, round_no: measure(opts, tools, pinning, key, proxies[key], round_no),
        )
        return report(opts, tools, pinning, started, runs)

    return harness.run_benchmark("bascule-cache-bench-", opts.keep_tmp, RESULTS_FILE, work)


if __name__ == "__main__":
    sys.exit(main())
