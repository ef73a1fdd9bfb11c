"""TLS benchmark: Bascule beside nginx, both terminating TLS in front of the same backends.

Run from the repository root:

    .venv/bin/python bench/tls.py [--duration 5s] [--rounds 2] [--connections 64] [--keep-tmp]

Three loads, interleaved nginx / Bascule in each round:

- `keepalive`: wrk over TLS keep-alive connections: requests per second;
- `resumed`: wrk with `Connection: close`, one TCP + TLS connection per request, which wrk
  resumes (a TLS 1.2 session ticket), as a returning browser would: connections per second;
- `full`: one connection per request with a full TLS 1.3 handshake (no resumption), from
  this script's own client (`--handshake-client`), pinned beside wrk: connections per second.

The proxy's CPU µs per request (per connection, in the two handshake loads) is the clean
cost figure, as in bench/run.py, whose harness (processes, pinning, CPU accounting) this
reuses. Certificate: ECDSA P-256, made here. Results: printed, and bench/results/tls.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import shlex
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import run as harness
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID
from run import HOST, BenchError, Pinning, Service, SideBySide, Tools

RESULTS_FILE = harness.BENCH_DIR / "results" / "tls.md"
SERVER_NAME = "bench.test"
MODES = ("keepalive", "resumed", "full")
PROXIES = ("nginx", "bascule")
HANDSHAKE_CONCURRENCY = 32  # enough to keep a proxy busy; more only queues in the client
# Bascule's default TLS 1.2 suites (bascule.net.tls.MODERN_CIPHERS), given to nginx too.
CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


# ---------------------------------------------------------------------- certificate


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for bench.test and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "bench.pem", folder / "bench.key"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_file, key_file


# ------------------------------------------------------------------------- services


def start_nginx(
    tools: Tools, tmp: Path, pinning: Pinning, backends: tuple[int, int], cert: tuple[Path, Path]
) -> Service:
    prefix = tmp / "nginx-tls"
    prefix.mkdir()
    port = harness.free_port()
    access_log = prefix / "access.log"
    conf = harness.render(
        "nginx-tls-proxy.conf.tmpl",
        prefix / "nginx.conf",
        prefix=str(prefix),
        port=port,
        access_log=str(access_log),
        backend1=backends[0],
        backend2=backends[1],
        temp_paths=harness.nginx_temp_paths(tools, prefix),
        cert=str(cert[0]),
        key=str(cert[1]),
        ciphers=CIPHERS,
    )
    service = harness.start_nginx(tools, "nginx", conf, prefix, pinning.proxy, port)
    service.access_log = access_log
    return service


def start_bascule(
    opts: SideBySide,
    tmp: Path,
    pinning: Pinning,
    backends: tuple[int, int],
    cert: tuple[Path, Path],
) -> Service:
    workdir = tmp / "bascule-tls"
    workdir.mkdir()
    port = harness.free_port()
    access_log = workdir / "access.log"
    conf = harness.render(
        "bascule-tls.yaml.tmpl",
        workdir / "bascule.yaml",
        port=port,
        access_log=str(access_log),
        state_dir=str(workdir),
        backend1=backends[0],
        backend2=backends[1],
        cert=str(cert[0]),
        key=str(cert[1]),
    )
    cmd = [*pinning.proxy, str(opts.bascule), "run", "-c", str(conf)]
    return harness.start_service("bascule", cmd, port, workdir, (signal.SIGTERM,), access_log)


def insecure_client() -> ssl.SSLContext:
    """The bench's certificate is self-signed; checking it would only add client work."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_ready_tls(service: Service) -> None:
    """The port accepts, and one GET / over TLS answers 200."""
    deadline = time.monotonic() + harness.READY_TIMEOUT_S
    last = "never accepted a connection"
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise BenchError(f"{service.name} exited:\n{harness.tail(service.log)}")
        conn = http.client.HTTPSConnection(HOST, service.port, timeout=2, context=insecure_client())
        try:
            conn.request("GET", "/", headers={"Host": SERVER_NAME})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"GET / answered {response.status}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        time.sleep(0.1)
    raise BenchError(f"{service.name} not ready on port {service.port} ({last})")


# ------------------------------------------------------------ full-handshake client


async def _handshakes(port: int, duration_s: float, concurrency: int) -> dict[str, float]:
    ctx = insecure_client()
    request = f"GET / HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    counts = {"done": 0, "errors": 0}

    async def one_after_another() -> None:
        while loop.time() < deadline:
            try:
                reader, writer = await asyncio.open_connection(
                    HOST, port, ssl=ctx, server_hostname=SERVER_NAME
                )
                writer.write(request)
                answer = await reader.read()
                writer.close()
                counts["done" if answer.startswith(b"HTTP/1.1 200") else "errors"] += 1
            except OSError:
                counts["errors"] += 1

    started = loop.time()
    await asyncio.gather(*(one_after_another() for _ in range(concurrency)))
    return {**counts, "elapsed": loop.time() - started}


def handshake_client(argv: Sequence[str]) -> int:
    """`--handshake-client PORT SECONDS CONCURRENCY`: prints {"done", "errors", "elapsed"}."""
    import uvloop  # Bascule's dependency; the client should not be the slow side

    port, seconds, concurrency = int(argv[0]), float(argv[1]), int(argv[2])
    print(json.dumps(uvloop.run(_handshakes(port, seconds, concurrency))))
    return 0


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Run:
    round: int
    mode: str
    proxy: str
    rate: float  # requests (keepalive) or connections per second
    requests: int
    errors: int
    us_per_req: float | None
    p99_ms: float | None


def load_command(
    tools: Tools, pinning: Pinning, opts: SideBySide, mode: str, port: int, seconds: int
) -> list[str]:
    url = f"https://{HOST}:{port}/"
    wrk = [*pinning.load, tools.wrk, "-t1", f"-c{opts.connections}", f"-d{seconds}s"]
    if mode == "keepalive":
        return [*wrk, "--latency", url]
    if mode == "resumed":
        return [*wrk, "--latency", "-H", "Connection: close", url]
    client = [sys.executable, str(Path(__file__).resolve()), "--handshake-client"]
    return [*pinning.load, *client, str(port), str(seconds), str(HANDSHAKE_CONCURRENCY)]


def measure(
    tools: Tools, pinning: Pinning, opts: SideBySide, mode: str, proxy: Service, round_no: int
) -> Run:
    harness.reset_log(proxy.access_log)
    cmd = load_command(tools, pinning, opts, mode, proxy.port, opts.duration_s)
    before = harness.cpu_ticks(proxy.pid)
    output, code = harness.run_wrk(cmd, opts.duration_s)
    spent = harness.cpu_ticks(proxy.pid) - before
    harness.settle_log_lines(proxy.access_log)
    if mode == "full":
        try:
            counts = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise BenchError(f"handshake client failed (exit {code}):\n{output}") from exc
        requests, errors = int(counts["done"]), int(counts["errors"])
        rate, p99 = requests / float(counts["elapsed"]), None
    else:
        result = harness.parse_wrk(output, code)
        requests, errors, rate = result.requests, result.error_count, result.rps
        p99 = result.p99_ms
    us = spent / harness.CLK_TCK * 1e6 / requests if requests else None
    return Run(round_no, mode, proxy.name, rate, requests, errors, us, p99)


def benchmark(
    opts: SideBySide, tools: Tools, pinning: Pinning, tmp: Path, services: list[Service]
) -> list[Run]:
    cert = make_certificate(tmp)
    backends = [harness.start_backend(tools, n, tmp, pinning) for n in ("backend1", "backend2")]
    services += backends
    for backend in backends:
        harness.wait_ready(backend)
    ports = (backends[0].port, backends[1].port)
    nginx = start_nginx(tools, tmp, pinning, ports, cert)
    services.append(nginx)
    bascule = start_bascule(opts, tmp, pinning, ports, cert)
    services.append(bascule)
    proxies = {"nginx": nginx, "bascule": bascule}
    for proxy in proxies.values():
        wait_ready_tls(proxy)
        print(f"# {proxy.name}: {shlex.join(proxy.command)}", flush=True)
        warm_up = load_command(tools, pinning, opts, "keepalive", proxy.port, harness.WARMUP_S)
        harness.run_wrk(warm_up, harness.WARMUP_S)
    runs: list[Run] = []
    for round_no in range(1, opts.rounds + 1):
        for mode in MODES:
            for name in PROXIES:
                run = measure(tools, pinning, opts, mode, proxies[name], round_no)
                runs.append(run)
                cost = harness.fmt(run.us_per_req, "7.1f")
                flag = f"  !! {run.errors} errors" if run.errors else ""
                print(
                    f"round {round_no} {mode:<9} {name:<7} {run.rate:>9,.0f}/s  "
                    f"{cost} us/req{flag}",
                    flush=True,
                )
                time.sleep(harness.PAUSE_BETWEEN_RUNS_S)
    return runs


# ---------------------------------------------------------------------------- report

UNITS = {"keepalive": "req/s", "resumed": "conn/s", "full": "conn/s"}
WHAT = {
    "keepalive": "TLS keep-alive, wrk",
    "resumed": "new connection per request, resumed TLS 1.2 (wrk)",
    "full": f"new connection per request, full TLS 1.3 handshake ({HANDSHAKE_CONCURRENCY} "
    "concurrent, Python client)",
}


def report(
    opts: SideBySide, tools: Tools, pinning: Pinning, started: dt.datetime, runs: list[Run]
) -> str:
    mu = harness.MU
    lines = [
        "# Bascule TLS benchmark",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Command: `{opts.command}`",
        f"- CPU: {harness.cpu_model()}; nginx {tools.nginx_version}; {tools.wrk_version}; "
        f"{ssl.OPENSSL_VERSION}; Bascule tree: git {harness.git_revision()}",
        f"- {opts.rounds} round(s) of {opts.duration_s} s per run, wrk -t1 -c{opts.connections}; "
        f"pinning: {pinning.note}",
        "- Certificate: ECDSA P-256; both proxies: 1 worker, access log on, upstream keep-alive",
        "",
        f"| load | nginx | Bascule | ratio | nginx {mu}s/req | Bascule {mu}s/req | cost ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        med = {
            name: (
                harness.median_or_none([r.rate for r in runs if (r.mode, r.proxy) == (mode, name)]),
                harness.median_or_none(
                    [r.us_per_req for r in runs if (r.mode, r.proxy) == (mode, name)]
                ),
            )
            for name in PROXIES
        }
        (n_rate, n_us), (b_rate, b_us) = med["nginx"], med["bascule"]
        lines.append(
            f"| {WHAT[mode]} | {harness.fmt(n_rate, ',.0f')} {UNITS[mode]} | "
            f"{harness.fmt(b_rate, ',.0f')} {UNITS[mode]} | {harness.ratio(b_rate, n_rate)} | "
            f"{harness.fmt(n_us, '.1f')} | {harness.fmt(b_us, '.1f')} | "
            f"{harness.ratio(b_us, n_us)} |"
        )
    errors = sum(r.errors for r in runs)
    lines += [
        "",
        f"Errors over all runs: {errors}.",
        "",
        f"| round | load | proxy | rate | requests | errors | {mu}s/req | p99 ms |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.round} | {r.mode} | {r.proxy} | {r.rate:,.0f} | {r.requests:,} | {r.errors} | "
            f"{harness.fmt(r.us_per_req, '.1f')} | {harness.fmt(r.p99_ms, '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--handshake-client"]:
        return handshake_client(args[1:])
    opts = harness.parse_side_by_side(args, "Bascule vs nginx terminating TLS")

    def work(tmp: Path, services: list[Service]) -> str:
        tools, pinning, started = harness.prepare()
        runs = benchmark(opts, tools, pinning, tmp, services)
        return report(opts, tools, pinning, started, runs)

    return harness.run_benchmark("bascule-tls-bench-", opts.keep_tmp, RESULTS_FILE, work)


if __name__ == "__main__":
    sys.exit(main())
