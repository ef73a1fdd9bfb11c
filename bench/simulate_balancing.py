"""Every balancer through the real proxy: four backends, one of them ten times slower.

Run from the repository root:

    .venv/bin/python bench/simulate_balancing.py [--requests 2000] [--concurrency 16]
        [--warmup 200] [--fast-ms 2] [--slow-ms 20] [--algorithms round_robin,least_time,...]

What it does:

1. Starts four HTTP/1.1 backends (asyncio on uvloop) in one child process, each on its own
   127.0.0.1 port: three answer after ``--fast-ms``, one after ``--slow-ms``. Each names
   itself in an ``X-Backend`` header and reports ``X-Server-Load: min(100, 10 x requests it
   has in flight)`` (queue depth as load: the slow one, holding more requests, reports more).
2. For each algorithm: writes a config to a temp dir (one worker, access log off, the four
   targets, ``trusted_proxies: [127.0.0.1/32]``), checks it with ``bascule check``, starts
   ``bascule run -c FILE``, waits for one 200 through it, sends ``--warmup`` requests (not
   counted: pools fill, least_time measures), then ``--requests`` requests from
   ``--concurrency`` keep-alive connections, and stops Bascule.
3. Prints a markdown table: requests, errors, req/s, client p50 / p99 / mean latency,
   each backend's share and the slow backend's share.

Every request is ``GET /?id=K`` with ``X-Forwarded-For: 10.0.A.B``, K and the address drawn
from 1,000 values by a seeded generator (the same sequence for every algorithm), so
``hash`` (key ``$arg_id``) and ``ip_hash`` see varied keys and ``geo`` a client region.
``geo`` puts all four targets in one region (``local``, clients 10.0.0.0/8): with one region
it is round robin within it, which is what it should be here.

Everything listens on 127.0.0.1; every process started here is stopped by PID in a
``finally`` block, and the backend process also exits when its stdin closes or after
``--max-seconds``. Standard library plus uvloop (a Bascule dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bascule.config.upstream import BALANCE_NAMES

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_BASCULE = REPO_DIR / ".venv" / "bin" / "bascule"
HOST = "127.0.0.1"
ALGORITHMS = BALANCE_NAMES  # every `balance:` the config accepts
BACKEND_NAMES = ("fast1", "fast2", "fast3", "slow")
SLOW = "slow"
REGION = "local"
KEYS = 1_000  # distinct ids and client addresses
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
LOAD_PER_REQUEST = 10  # X-Server-Load = min(100, LOAD_PER_REQUEST x in flight)
DASH = "\u2013"


class BenchError(Exception):
    """A setup step failed; the message says what and why."""


# ---------------------------------------------------------------------------- backends


@dataclass
class BackendStats:
    in_flight: int = 0


async def handle_backend(
    name: str,
    delay_s: float,
    stats: BackendStats,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Keep-alive HTTP/1.1: every request (GET, no body) gets 200 after delay_s."""
    body = f"{name}\n".encode()
    try:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            stats.in_flight += 1
            try:
                await asyncio.sleep(delay_s)
                load = min(100, LOAD_PER_REQUEST * stats.in_flight)
            finally:
                stats.in_flight -= 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\nX-Backend: %s\r\nX-Server-Load: %d\r\n\r\n%s"
                % (len(body), name.encode(), load, body)
            )
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


async def serve_backends(fast_ms: float, slow_ms: float, max_seconds: float) -> None:
    """The child process: print the ports as one JSON line, serve until stdin closes."""
    servers = []
    ports: dict[str, int] = {}
    for name in BACKEND_NAMES:
        delay_s = (slow_ms if name == SLOW else fast_ms) / 1000
        stats = BackendStats()

        async def handler(
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
            name: str = name,
            delay_s: float = delay_s,
            stats: BackendStats = stats,
        ) -> None:
            await handle_backend(name, delay_s, stats, reader, writer)

        server = await asyncio.start_server(handler, HOST, 0, backlog=512)
        servers.append(server)
        ports[name] = server.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed: asyncio.Future[None] = loop.create_future()

    def closed() -> None:
        if not stdin_closed.done():
            stdin_closed.set_result(None)

    def wait_for_eof() -> None:  # a daemon thread: it never holds the process up
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(closed)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    try:
        await asyncio.wait_for(stdin_closed, timeout=max_seconds)
    except TimeoutError:
        pass
    finally:
        for server in servers:
            server.close()


# ------------------------------------------------------------------------------ client


@dataclass
class RunResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    backends: Counter[str] = field(default_factory=Counter)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the client latencies, in ms."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(1, round(q / 100 * len(ordered) + 0.5))
        return ordered[min(rank, len(ordered)) - 1]

    def mean(self) -> float:
        return statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan")

    def share(self, name: str) -> float:
        total = sum(self.backends.values())
        return 100 * self.backends[name] / total if total else float("nan")


def request_bytes(seed: int, count: int) -> list[bytes]:
    """The same varied request sequence for every algorithm: id and client address."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        key = rng.randrange(KEYS)
        out.append(
            b"GET /?id=%d HTTP/1.1\r\nHost: sim.test\r\nX-Forwarded-For: 10.0.%d.%d\r\n\r\n"
            % (key, key // 250, key % 250 + 1)
        )
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, str]:
    """Status and X-Backend of one Content-Length response (all these backends send)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    backend = "?"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        lowered = name.strip().lower()
        if lowered == "content-length":
            length = int(value)
        elif lowered == "x-backend":
            backend = value.strip()
    if length:
        await reader.readexactly(length)
    return status, backend


async def drive(port: int, requests: Sequence[bytes], concurrency: int) -> RunResult:
    """Send every request once from `concurrency` keep-alive connections; time each."""
    result = RunResult()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                start = time.perf_counter()
                try:
                    if writer is None or reader is None:
                        reader, writer = await asyncio.open_connection(HOST, port)
                        start = time.perf_counter()  # time the request, not the connect
                    writer.write(request)
                    status, backend = await asyncio.wait_for(
                        read_response(reader), REQUEST_TIMEOUT_S
                    )
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    result.errors += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                elapsed_ms = (time.perf_counter() - start) * 1000
                result.requests += 1
                if status != 200:
                    result.errors += 1
                    continue
                result.latencies_ms.append(elapsed_ms)
                result.backends[backend] += 1
        finally:
            if writer is not None:
                writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


def run_load(port: int, requests: Sequence[bytes], concurrency: int) -> RunResult:
    return uvloop.run(drive(port, requests, concurrency))


# ----------------------------------------------------------------------------- processes


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


def start_process(name: str, cmd: list[str], workdir: Path, stdin: int | None) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children by PID
        )
    return Process(name, popen, log)


def stop_process(process: Process) -> None:
    """SIGTERM by PID, SIGKILL if it has not exited within STOP_TIMEOUT_S."""
    popen = process.popen
    if popen.stdin is not None:
        popen.stdin.close()
    if popen.stdout is not None:
        popen.stdout.close()
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(STOP_TIMEOUT_S)


def tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start_backends(opts: Options, workdir: Path) -> tuple[Process, dict[str, int]]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-backends",
        "--fast-ms",
        str(opts.fast_ms),
        "--slow-ms",
        str(opts.slow_ms),
        "--max-seconds",
        str(opts.max_seconds),
    ]
    log = workdir / "backends.log"
    with log.open("wb") as err:
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=workdir,
            start_new_session=True,
        )
    process = Process("backends", popen, log)
    stdout = popen.stdout
    assert stdout is not None
    first_line: list[bytes] = []
    reader = threading.Thread(target=lambda: first_line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    if not first_line or not first_line[0]:
        stop_process(process)
        raise BenchError(f"backends did not start (exit status {popen.poll()}):\n{tail(log)}")
    ports: dict[str, int] = json.loads(first_line[0])
    return process, ports


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def upstream_for(balance: str, ports: dict[str, int]) -> dict[str, Any]:
    targets: list[dict[str, Any]] = [{"address": f"{HOST}:{ports[n]}"} for n in BACKEND_NAMES]
    upstream: dict[str, Any] = {"balance": balance, "targets": targets}
    if balance == "hash":
        upstream["key"] = "$arg_id"
    elif balance == "geo":
        for target in targets:
            target["region"] = REGION
        upstream["geo"] = {"client_regions": {REGION: ["10.0.0.0/8"]}}
    return upstream


def bascule_config(balance: str, port: int, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "workers": 1,
        "access_log": {"enabled": False},
        "trusted_proxies": [f"{HOST}/32"],
        "listeners": [{"name": "sim", "bind": f"{HOST}:{port}", "protocol": "http"}],
        "routes": [{"name": "all", "match": {"path": "/"}, "upstream": "app"}],
        "upstreams": {"app": upstream_for(balance, ports)},
    }


def check_config(opts: Options, conf: Path) -> None:
    done = subprocess.run(
        [str(opts.bascule), "check", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"bascule check -c {conf} failed:\n{done.stdout}{done.stderr}")


def wait_ready(process: Process, port: int, probe: bytes) -> None:
    """Poll until Bascule answers one request through to a backend with 200."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "never accepted a connection"
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise BenchError(
                f"bascule exited with status {process.popen.returncode}:\n{tail(process.log)}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                sock.sendall(probe)
                data = sock.recv(65536)
            if data.startswith(b"HTTP/1.1 200"):
                return
            last = repr(data[:60])
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise BenchError(f"bascule not ready on port {port} ({last}):\n{tail(process.log)}")


def run_algorithm(
    opts: Options, balance: str, ports: dict[str, int], tmp: Path, requests: list[bytes]
) -> RunResult:
    workdir = tmp / balance
    workdir.mkdir()
    port = free_port()
    conf = workdir / "bascule.yaml"
    conf.write_text(json.dumps(bascule_config(balance, port, ports), indent=2))  # JSON is YAML
    check_config(opts, conf)
    process = start_process("bascule", [str(opts.bascule), "run", "-c", str(conf)], workdir, None)
    try:
        wait_ready(process, port, requests[0])
        if opts.warmup:
            run_load(port, requests[: opts.warmup], opts.concurrency)
        return run_load(port, requests[opts.warmup :], opts.concurrency)
    finally:
        stop_process(process)


def direct_reference(opts: Options, ports: dict[str, int], requests: list[bytes]) -> str:
    """Latency straight to one fast and to the slow backend: no proxy, one connection."""
    parts = []
    for name in ("fast1", SLOW):
        result = run_load(ports[name], requests[: opts.direct], 1)
        parts.append(
            f"{name} p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms"
        )
    return "; ".join(parts)


# ------------------------------------------------------------------------------- report


def table(results: dict[str, RunResult]) -> str:
    shares = " | ".join(f"{n} %" for n in BACKEND_NAMES[:-1])
    lines = [
        f"| `balance:` | requests | errors | req/s | p50 ms | p99 ms | mean ms | {shares} "
        "| **slow %** |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (len(BACKEND_NAMES) - 1) + "---:|",
    ]
    for balance, r in results.items():
        fast = " | ".join(f"{r.share(n):.1f}" for n in BACKEND_NAMES[:-1])
        rate = r.requests / r.seconds if r.seconds else 0.0
        lines.append(
            f"| `{balance}` | {r.requests} | {r.errors} | {rate:.0f} | "
            f"{r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.mean():.1f} | {fast} | "
            f"**{r.share(SLOW):.1f}** |"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or DASH


# ------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    requests: int
    warmup: int
    concurrency: int
    fast_ms: float
    slow_ms: float
    algorithms: tuple[str, ...]
    bascule: Path
    direct: int
    max_seconds: float
    seed: int


def parse_args(argv: Sequence[str]) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=2000, help="counted, per algorithm")
    parser.add_argument("--warmup", type=int, default=200, help="not counted, per algorithm")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--fast-ms", type=float, default=2.0, help="fast backends' delay")
    parser.add_argument("--slow-ms", type=float, default=20.0, help="slow backend's delay")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--bascule", type=Path, default=DEFAULT_BASCULE)
    parser.add_argument(
        "--direct", type=int, default=100, help="requests straight to each backend (0: skip)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="backends exit after this regardless"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve-backends", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    algorithms = tuple(a.strip() for a in args.algorithms.split(",") if a.strip())
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        parser.error(f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(ALGORITHMS)}")
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0 or args.direct < 0:
        parser.error("--requests and --concurrency must be >= 1, --warmup and --direct >= 0")
    opts = Options(
        requests=args.requests,
        warmup=args.warmup,
        concurrency=args.concurrency,
        fast_ms=args.fast_ms,
        slow_ms=args.slow_ms,
        algorithms=algorithms,
        bascule=args.bascule,
        direct=args.direct,
        max_seconds=args.max_seconds,
        seed=args.seed,
    )
    return opts, bool(args.serve_backends)


def main(argv: Sequence[str]) -> int:
    opts, serve = parse_args(argv)
    if serve:
        uvloop.run(serve_backends(opts.fast_ms, opts.slow_ms, opts.max_seconds))
        return 0
    if not opts.bascule.exists():
        print(f"error: {opts.bascule} not found (pass --bascule PATH)", file=sys.stderr)
        return 2
    command = shlex.join([".venv/bin/python", "bench/simulate_balancing.py", *argv])
    print(f"# {command}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')} · {cpu_model()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# backends: fast1-3 answer after {opts.fast_ms:g} ms, slow after {opts.slow_ms:g} ms; "
        f"{opts.concurrency} connections, {opts.warmup} warm-up + {opts.requests} requests each",
        flush=True,
    )
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    requests = request_bytes(opts.seed, opts.warmup + opts.requests)
    results: dict[str, RunResult] = {}
    began = time.monotonic()
    backends: Process | None = None
    with tempfile.TemporaryDirectory(prefix="bascule-sim-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            backends, ports = start_backends(opts, tmp)
            if opts.direct:
                print(
                    f"# direct, no proxy, 1 connection: {direct_reference(opts, ports, requests)}"
                )
            for balance in opts.algorithms:
                result = run_algorithm(opts, balance, ports, tmp, requests)
                results[balance] = result
                print(
                    f"# {balance}: {result.requests} requests in {result.seconds:.1f} s, "
                    f"slow {result.share(SLOW):.1f} %",
                    flush=True,
                )
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            if backends is not None:
                stop_process(backends)
    print(f"# total {time.monotonic() - began:.0f} s\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
