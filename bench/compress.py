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

import argparse
import datetime as dt
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import run as harness
from run import HOST, Pinning, Service, Tools

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


@dataclass(frozen=True)
class Options:
    duration_s: int
    rounds: int
    connections: int
    bascule: Path
    keep_tmp: bool
    command: str


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description="Bascule vs nginx, compressing responses")
    parser.add_argument("--duration", type=harness.parse_duration, default=5, help="per run (5s)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument("--bascule", type=Path, default=harness.DEFAULT_BASCULE)
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp prefix dir")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.connections < 1:
        parser.error("--rounds and --connections must be >= 1")
    return Options(
        args.duration,
        args.rounds,
        args.connections,
        args.bascule,
        args.keep_tmp,
        shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    )


@dataclass(frozen=True)
class Run:
    round: int
    proxy: str
    encoding: str
    rps: float
    errors: int
    us_per_req: float | None
    p99_ms: float


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


def start_page_backend(tools: Tools, name: str, tmp: Path, pinning: Pinning) -> Service:
    prefix = tmp / name
    prefix.mkdir()
    (prefix / "page.txt").write_text(PAGE)
    for readable in (tmp, prefix):  # nginx's workers may run as another user
        readable.chmod(0o755)
    port = harness.free_port()
    conf = harness.render(
        "nginx-file-backend.conf.tmpl",
        prefix / "nginx.conf",
        prefix=str(prefix),
        port=port,
        temp_paths=harness.nginx_temp_paths(tools, prefix),
    )
    return harness.start_nginx(tools, name, conf, prefix, pinning.load, port)


def measure(
    opts: Options, tools: Tools, pinning: Pinning, proxy: Service, encoding: str, round_no: int
) -> Run:
    harness.reset_log(proxy.access_log)
    cmd = harness.wrk_command(tools, pinning, "host", proxy.port, opts.duration_s, opts.connections)
    if encoding != "identity":
        cmd[-1:-1] = ["-H", f"Accept-Encoding: {encoding}"]
    before = harness.cpu_ticks(proxy.pid)
    output, code = harness.run_wrk(cmd, opts.duration_s)
    spent = harness.cpu_ticks(proxy.pid) - before
    harness.settle_log_lines(proxy.access_log)
    result = harness.parse_wrk(output, code)
    us = spent / harness.CLK_TCK * 1e6 / result.requests if result.requests else None
    name = "nginx" if proxy.name == "nginx" else "bascule"
    return Run(round_no, name, encoding, result.rps, result.error_count, us, result.p99_ms)


def benchmark(
    opts: Options, tools: Tools, pinning: Pinning, tmp: Path, services: list[Service]
) -> tuple[list[Run], dict[tuple[str, str], int]]:
    backends = [start_page_backend(tools, n, tmp, pinning) for n in ("backend1", "backend2")]
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
    runs: list[Run] = []
    for round_no in range(1, opts.rounds + 1):
        for name, encoding in CASES:
            run = measure(opts, tools, pinning, proxies[name], encoding, round_no)
            runs.append(run)
            flag = f"  !! {run.errors} errors" if run.errors else ""
            print(
                f"round {round_no} {name:<8} {encoding:<9} {run.rps:>9,.0f} req/s  "
                f"{harness.fmt(run.us_per_req, '7.1f')} us/req{flag}",
                flush=True,
            )
            time.sleep(harness.PAUSE_BETWEEN_RUNS_S)
    return runs, sizes


def report(
    opts: Options,
    tools: Tools,
    pinning: Pinning,
    started: dt.datetime,
    runs: list[Run],
    sizes: dict[tuple[str, str], int],
) -> str:
    mu = harness.MU
    original = len(PAGE.encode())

    def median(name: str, encoding: str, field: str) -> float | None:
        picked = [r for r in runs if (r.proxy, r.encoding) == (name, encoding)]
        return harness.median_or_none([getattr(r, field) for r in picked])

    nginx_gzip = median("nginx", "gzip", "rps")
    lines = [
        "# Bascule compression benchmark",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Command: `{opts.command}`",
        f"- CPU: {harness.cpu_model()}; nginx {tools.nginx_version}; {tools.wrk_version}; "
        f"Bascule tree: git {harness.git_revision()}",
        f"- {opts.rounds} round(s) of {opts.duration_s} s per run, wrk -t1 -c{opts.connections}; "
        f"pinning: {pinning.note}; body {original:,} bytes (text/plain), both proxies 1 worker, "
        "level 5 for gzip",
        "",
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
    lines += [
        "",
        f"Errors over all runs: {sum(r.errors for r in runs)}.",
        "",
        f"| round | proxy | encoding | req/s | errors | {mu}s/req | p99 ms |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.round} | {r.proxy} | {r.encoding} | {r.rps:,.0f} | {r.errors} | "
            f"{harness.fmt(r.us_per_req, '.1f')} | {r.p99_ms:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)

    def work(tmp: Path, services: list[Service]) -> str:
        tools = harness.find_tools()
        harness.warn_if_busy()
        pinning = harness.choose_pinning(tools)
        started = dt.datetime.now().astimezone()
        runs, sizes = benchmark(opts, tools, pinning, tmp, services)
        return report(opts, tools, pinning, started, runs, sizes)

    return harness.run_benchmark("bascule-compress-bench-", opts.keep_tmp, RESULTS_FILE, work)


if __name__ == "__main__":
    sys.exit(main())
