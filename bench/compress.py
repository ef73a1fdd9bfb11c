"""Compression benchmark: Bascule's zstd, br and gzip beside nginx's gzip, in one run.

Run from the repository root:

    .venv/bin/python bench/compress.py [--duration 5s] [--rounds 2] [--connections 64]
                                       [--keep-tmp]

Two nginx backends serve a 19 KB HTML-like page as a static file (`text/plain`). In front
of them, with the pinning and CPU accounting of bench/run.py: nginx with `gzip on` (level
5, as Bascule's default) and Bascule with `compress: {}`. wrk sends `Accept-Encoding: <one
algorithm>` and measures req/s; the proxy's CPU per request shows what compressing costs;
one request per case measures the bytes on the wire. "identity" (no Accept-Encoding) is the
uncompressed reference for each proxy. Results: printed, and bench/results/compress.md.
"""

from __future__ import annotations

import datetime as dt
import shlex
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import run as harness
from run import HOST, CaseRun, Pinning, Service, SideBySide, Tools

RESULTS_FILE = harness.BENCH_DIR / "results" / "compress.md"
PAGE = "".join(
    f"<li class=row><a href=/items/{n}>Item {n}</a> in stock, ships in {n % 5 + 1} days</li>\n"
    for n in range(250)
)
CASES = (
    ("nginx", "identity"),
    ("nginx", "gzip"),
    ("bascule", "identity"),
    ("bascule", "gzip"),
    ("bascule", "br"),
    ("bascule", "zstd"),
)
NGINX_GZIP = """    gzip on;
    gzip_comp_level 5;
    gzip_min_length 1024;
    gzip_proxied any;
    gzip_vary on;
    gzip_types text/plain;"""
BASCULE_COMPRESS = ", compress: {}"


def body_size(port: int, encoding: str) -> int:
    """Bytes of body one response carries with `Accept-Encoding: encoding`."""
    accept = f"Accept-Encoding: {encoding}\r\n" if encoding != "identity" else ""
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{accept}Connection: close\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return len(body)
    size, rest = 0, body
    while True:
        line, _, rest = rest.partition(b"\r\n")
        length = int(line, 16)
        if length == 0:
            return size
        size += length
        rest = rest[length + 2 :]


def measure(
    opts: SideBySide, tools: Tools, pinning: Pinning, proxy: Service, encoding: str, round_no: int
) -> CaseRun:
    accept = [f"Accept-Encoding: {encoding}"] if encoding != "identity" else []
    result, us = harness.wrk_cost(tools, pinning, opts, proxy, accept)
    name = "nginx" if proxy.name == "nginx" else "bascule"
    return CaseRun(round_no, name, encoding, result.rps, result.error_count, us, result.p99_ms)


def benchmark(
    opts: SideBySide, tools: Tools, pinning: Pinning, tmp: Path, services: list[Service]
) -> tuple[list[CaseRun], dict[tuple[str, str], int]]:
    backends = [
        harness.start_file_backend(tools, n, tmp, pinning, PAGE) for n in ("backend1", "backend2")
    ]
    services += backends
    for backend in backends:
        harness.wait_ready(backend)
    ports = (backends[0].port, backends[1].port)
    proxies = {
        "nginx": harness.start_nginx_proxy(tools, tmp, pinning, ports, http_extra=NGINX_GZIP),
        "bascule": harness.start_bascule(
            opts.bascule, tmp, pinning, ports, route_extra=BASCULE_COMPRESS
        ),
    }
    services += proxies.values()
    for proxy in proxies.values():
        harness.wait_ready(proxy)
        print(f"# {proxy.name}: {shlex.join(proxy.command)}", flush=True)
    sizes = {(name, enc): body_size(proxies[name].port, enc) for name, enc in CASES}
    runs = harness.run_cases(
        opts.rounds,
        CASES,
        lambda case, round_no: measure(opts, tools, pinning, proxies[case[0]], case[1], round_no),
    )
    return runs, sizes


def report(
    opts: SideBySide,
    tools: Tools,
    pinning: Pinning,
    started: dt.datetime,
    runs: list[CaseRun],
    sizes: dict[tuple[str, str], int],
) -> str:
    mu = harness.MU
    original = len(PAGE.encode())

    def median(name: str, encoding: str, field: str) -> float | None:
        return harness.case_median(runs, name, encoding, field)

    nginx_gzip = median("nginx", "gzip", "rps")
    setup = (
        f"pinning: {pinning.note}; body {original:,} bytes (text/plain), both proxies 1 worker, "
        "level 5 for gzip"
    )
    lines = [
        *harness.report_head("Bascule compression benchmark", opts, tools, started, setup),
        f"| proxy | encoding | req/s | vs nginx gzip | {mu}s/req | body bytes | saved |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, encoding in CASES:
        rps = median(name, encoding, "rps")
        size = sizes[name, encoding]
        lines.append(
            f"| {name} | {encoding} | {harness.fmt(rps, ',.0f')} | "
            f"{harness.ratio(rps, nginx_gzip)} | "
            f"{harness.fmt(median(name, encoding, 'us_per_req'), '.1f')} | {size:,} | "
            f"{1 - size / original:.1%} |"
        )
    lines += ["", *harness.case_runs_table(runs, "encoding")]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    opts = harness.parse_side_by_side(
        sys.argv[1:] if argv is None else argv, "Bascule vs nginx, compressing responses"
    )

    def work(tmp: Path, services: list[Service]) -> str:
        tools, pinning, started = harness.prepare()
        runs, sizes = benchmark(opts, tools, pinning, tmp, services)
        return report(opts, tools, pinning, started, runs, sizes)

    return harness.run_benchmark("bascule-compress-bench-", opts.keep_tmp, RESULTS_FILE, work)


if __name__ == "__main__":
    sys.exit(main())
