"""TCP proxy benchmark: Bascule's tcp listener beside nginx `stream` and HAProxy `mode tcp`.

Run from the repository root:

    .venv/bin/python bench/tcp.py [--rounds 2] [--seconds 4] [--requests 50000] [--quick]
                                  [--big-buffers]

Two loads, interleaved per round over direct (no proxy), nginx, HAProxy and Bascule:

- bulk: 4 connections download from a source target as fast as they can for `--seconds`:
  MB/s, and the proxy's CPU time per MB moved (µs/MB).
- redis: `redis-benchmark -t set,get -c 50 -n REQUESTS` against a real redis-server
  through the proxy: req/s (small messages both ways), and CPU µs per request.

Each proxy runs one worker pinned to the first CPU (`taskset`); the source, the clients,
redis-server and redis-benchmark run on the second. Everything listens on 127.0.0.1 and
lives in a temp prefix; every process started here is stopped by PID in a `finally`.
Reuses bench/run.py's process helpers. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from run import (
    CLK_TCK,
    DEFAULT_BASCULE,
    HOST,
    REPO_DIR,
    BenchError,
    Service,
    command_output,
    cpu_ticks,
    find_binary,
    free_port,
    run_benchmark,
    start_service,
    tail,
)

RESULTS_FILE = REPO_DIR / "bench" / "results" / "tcp-latest.md"
TARGETS = ("direct", "nginx", "haproxy", "bascule")
PROXIES = TARGETS[1:]
BULK_CONNECTIONS = 4
REDIS_CLIENTS = 50
BLOCK = 1024 * 1024  # bytes per send/recv call of the source and the clients
READY_TIMEOUT_S = 15.0
MB = 1_000_000
MU = "\u00b5"
DASH = "\u2013"
LOAD_AT_START = "?"  # the 1-minute load average when the run began, for the report

NGINX_CONF = Template(
    """\
load_module $module;
worker_processes 1;
pid $prefix/nginx.pid;
events { worker_connections 4096; }
stream {
    log_format basic '$$remote_addr [$$time_local] $$status $$bytes_sent $$bytes_received '
                     '$$session_time "$$upstream_addr"';
    access_log $prefix/access.log basic;
    $buffers
    server { listen $host:$bulk_port; proxy_pass $host:$bulk_target; }
    server { listen $host:$redis_port; proxy_pass $host:$redis_target; }
}
"""
)

HAPROXY_CONF = Template(
    """\
global
    maxconn 4096
    nbthread 1
    $buffers
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend bulk
    bind $host:$bulk_port
    default_backend bulk
backend bulk
    server source $host:$bulk_target
frontend redis
    bind $host:$redis_port
    default_backend redis
backend redis
    server redis $host:$redis_target
"""
)

BASCULE_CONF = Template(
    """\
workers: 1
access_log: {path: $access_log}
listeners:
  - {name: bulk, bind: "$host:$bulk_port", protocol: tcp, upstream: bulk}
  - {name: redis, bind: "$host:$redis_port", protocol: tcp, upstream: redis}
upstreams:
  bulk: {targets: [{address: "$host:$bulk_target"}]}
  redis: {targets: [{address: "$host:$redis_target"}]}
"""
)


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: float
    big_buffers: bool
    requests: int
    bascule: Path
    keep_tmp: bool
    command: str


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument("--seconds", type=float, default=4.0, help="bulk run length (4)")
    parser.add_argument("--requests", type=int, default=50_000, help="redis-benchmark -n")
    parser.add_argument("--bascule", type=Path, default=DEFAULT_BASCULE, help="bascule CLI")
    parser.add_argument(
        "--big-buffers",
        action="store_true",
        help="nginx proxy_buffer_size and HAProxy tune.bufsize 256k (defaults: 16k)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s, 20000 requests")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp prefix dir")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.requests < 1:
        parser.error("--rounds, --seconds and --requests must be positive")
    return Options(
        rounds=1 if args.quick else args.rounds,
        seconds=2.0 if args.quick else args.seconds,
        big_buffers=args.big_buffers,
        requests=20_000 if args.quick else args.requests,
        bascule=args.bascule,
        keep_tmp=args.keep_tmp,
        command=shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    )


# ----------------------------------------------------------------------------- tools


@dataclass
class Tools:
    taskset: str | None
    redis_server: str
    redis_benchmark: str
    nginx: str | None = None
    nginx_module: str | None = None
    haproxy: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def apt_install(packages: list[str]) -> bool:
    """apt-get install when root; False when not allowed or it failed."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    print(f"# installing {' '.join(packages)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode == 0:
        return True
    subprocess.run(["apt-get", "update"], env=env, check=False, capture_output=True)
    return subprocess.run(install, env=env, check=False, capture_output=True).returncode == 0


def stream_module(nginx: str) -> str | None:
    """The path to load_module for nginx's stream module; "" when it is built in."""
    build = command_output([nginx, "-V"])
    if "--with-stream " in build + " " and "--with-stream=dynamic" not in build:
        return ""
    for directory in ("/usr/lib/nginx/modules", "/usr/share/nginx/modules"):
        path = Path(directory, "ngx_stream_module.so")
        if path.exists():
            return str(path)
    return None


def find_tools() -> Tools:
    if find_binary("redis-server") is None or find_binary("redis-benchmark") is None:
        apt_install(["redis-server"])
    redis_server, redis_benchmark = find_binary("redis-server"), find_binary("redis-benchmark")
    if redis_server is None or redis_benchmark is None:
        raise BenchError("redis-server is missing: `sudo apt-get install -y redis-server`")
    tools = Tools(find_binary("taskset"), redis_server, redis_benchmark)
    tools.versions["redis"] = command_output([redis_server, "--version"]).split(" sha=")[0]
    nginx = find_binary("nginx")
    if nginx is None and apt_install(["nginx-light"]):
        nginx = find_binary("nginx")
    if nginx is not None:
        module = stream_module(nginx)
        if module is None and apt_install(["libnginx-mod-stream"]):
            module = stream_module(nginx)
        if module is None:
            tools.skipped["nginx"] = "no stream module (apt-get install libnginx-mod-stream)"
        else:
            tools.nginx, tools.nginx_module = nginx, module
            tools.versions["nginx"] = command_output([nginx, "-v"]).removeprefix("nginx version: ")
    else:
        tools.skipped["nginx"] = "not installed (apt-get install nginx-light)"
    haproxy = find_binary("haproxy")
    if haproxy is None and apt_install(["haproxy"]):
        haproxy = find_binary("haproxy")
    if haproxy is None:
        tools.skipped["haproxy"] = "not installed (apt-get install haproxy)"
    else:
        tools.haproxy = haproxy
        tools.versions["haproxy"] = command_output([haproxy, "-v"]).splitlines()[0]
    return tools


# --------------------------------------------------------------------------- pinning


@dataclass(frozen=True)
class Pinning:
    proxy: list[str]
    load: list[str]
    note: str


def pin(tools: Tools) -> Pinning:
    """The proxy on the first CPU; this harness (source, clients) and what it starts for
    the load side (redis) on the second."""
    cpus = sorted(os.sched_getaffinity(0))
    if tools.taskset is None or len(cpus) < 2:
        why = "taskset not found" if tools.taskset is None else "fewer than 2 CPUs"
        print(f"# WARNING: no CPU pinning ({why}); numbers are less comparable", flush=True)
        return Pinning([], [], f"none ({why})")
    proxy_cpu, load_cpu = cpus[0], cpus[1]
    os.sched_setaffinity(0, {load_cpu})
    return Pinning(
        [tools.taskset, "-c", str(proxy_cpu)],
        [tools.taskset, "-c", str(load_cpu)],
        f"proxy on CPU {proxy_cpu}; source, clients and redis on CPU {load_cpu}",
    )


# ------------------------------------------------------------------- the bulk source


class Source:
    """A target that sends BLOCK-sized writes to every connection until it closes."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket) -> None:
        block = memoryview(b"s" * BLOCK)
        with conn:
            try:
                while not self._stop.is_set():
                    conn.sendall(block)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def bulk_download(port: int, seconds: float) -> tuple[int, float]:
    """(bytes, seconds): BULK_CONNECTIONS clients reading as fast as they can."""
    totals = [0] * BULK_CONNECTIONS
    socks = [socket.create_connection((HOST, port), timeout=5) for _ in range(BULK_CONNECTIONS)]
    started = time.monotonic()
    deadline = started + seconds

    def read(index: int) -> None:
        buffer = bytearray(BLOCK)
        sock = socks[index]
        while time.monotonic() < deadline:
            n = sock.recv_into(buffer)
            if not n:
                return
            totals[index] += n

    threads = [threading.Thread(target=read, args=(i,)) for i in range(BULK_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    return sum(totals), elapsed


# ----------------------------------------------------------------------------- redis


def start_redis(tools: Tools, tmp: Path, pinning: Pinning) -> Service:
    workdir = tmp / "redis"
    workdir.mkdir()
    port = free_port()
    cmd = [
        *pinning.load,
        tools.redis_server,
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    return start_service("redis", cmd, port, workdir, (signal.SIGTERM,))


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16) == b"+PONG\r\n"
    except OSError:
        return False


def redis_benchmark(
    tools: Tools, pinning: Pinning, port: int, requests: int
) -> tuple[dict[str, float], str]:
    """req/s per test (SET, GET), and any error text."""
    cmd = [
        *pinning.load,
        tools.redis_benchmark,
        "-h", HOST,
        "-p", str(port),
        "-q",
        "-n", str(requests),
        "-c", str(REDIS_CLIENTS),
        "-t", "set,get",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    rates = {
        name: float(rate)
        for name, rate in re.findall(
            r"^(SET|GET): ([\d.]+) requests per second", output.replace("\r", "\n"), re.M
        )
    }
    errors = ""
    if done.returncode != 0 or "error" in output.lower() or len(rates) != 2:
        errors = " ".join(output.split())[-300:]
    return rates, errors


# --------------------------------------------------------------------------- proxies


@dataclass(frozen=True)
class Ports:
    bulk: int
    redis: int


def start_proxy(
    name: str,
    tools: Tools,
    opts: Options,
    tmp: Path,
    pinning: Pinning,
    targets: Ports,
) -> tuple[Service, Ports]:
    prefix = tmp / name
    prefix.mkdir()
    ports = Ports(free_port(), free_port())
    values = {
        "host": HOST,
        "prefix": str(prefix),
        "bulk_port": ports.bulk,
        "redis_port": ports.redis,
        "bulk_target": targets.bulk,
        "redis_target": targets.redis,
    }
    conf = prefix / "proxy.conf"
    if name == "nginx":
        assert tools.nginx is not None
        assert tools.nginx_module is not None
        buffers = "proxy_buffer_size 256k;" if opts.big_buffers else ""
        text = NGINX_CONF.substitute(values, module=tools.nginx_module, buffers=buffers)
        if not tools.nginx_module:
            text = text.split("\n", 1)[1]  # stream is built in: no load_module line
        conf.write_text(text)
        cmd = [
            *pinning.proxy,
            tools.nginx,
            "-p", str(prefix),
            "-e", str(prefix / "error.log"),
            "-c", str(conf),
            "-g", "daemon off;",
        ]  # fmt: skip
        signals: tuple[signal.Signals, ...] = (signal.SIGQUIT, signal.SIGTERM)
    elif name == "haproxy":
        assert tools.haproxy is not None
        buffers = "tune.bufsize 262144" if opts.big_buffers else ""
        conf.write_text(HAPROXY_CONF.substitute(values, buffers=buffers))
        cmd = [*pinning.proxy, tools.haproxy, "-db", "-f", str(conf)]
        signals = (signal.SIGUSR1, signal.SIGTERM)
    else:
        conf = prefix / "bascule.yaml"
        conf.write_text(BASCULE_CONF.substitute(values, access_log=prefix / "access.log"))
        cmd = [*pinning.proxy, str(opts.bascule), "run", "-c", str(conf)]
        signals = (signal.SIGTERM,)
    service = start_service(name, cmd, ports.bulk, prefix, signals)
    wait_ready(service, ports)
    return service, ports


def wait_ready(service: Service, ports: Ports) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise BenchError(
                f"{service.name} exited with status {service.popen.returncode}:\n"
                + tail(service.log)
            )
        if redis_ping(ports.redis):
            return
        time.sleep(0.1)
    raise BenchError(f"{service.name} does not pass PING to redis on port {ports.redis}")


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Run:
    round: int
    target: str
    mb_per_s: float
    us_per_mb: float | None
    set_rps: float
    get_rps: float
    us_per_req: float | None
    errors: str


def measure(
    target: str,
    service: Service | None,
    ports: Ports,
    tools: Tools,
    pinning: Pinning,
    opts: Options,
    round_: int,
) -> Run:
    before = cpu_ticks(service.pid) if service is not None else 0
    moved, elapsed = bulk_download(ports.bulk, opts.seconds)
    middle = cpu_ticks(service.pid) if service is not None else 0
    rates, errors = redis_benchmark(tools, pinning, ports.redis, opts.requests)
    after = cpu_ticks(service.pid) if service is not None else 0
    us_per_mb = us_per_req = None
    if service is not None:
        us_per_mb = (middle - before) / CLK_TCK * 1e6 / (moved / MB)
        us_per_req = (after - middle) / CLK_TCK * 1e6 / (2 * opts.requests)
    run = Run(
        round_,
        target,
        moved / MB / elapsed,
        us_per_mb,
        rates.get("SET", 0.0),
        rates.get("GET", 0.0),
        us_per_req,
        errors,
    )
    print(
        f"# round {round_} {target:8} bulk {run.mb_per_s:8,.0f} MB/s  "
        f"redis SET {run.set_rps:8,.0f} GET {run.get_rps:8,.0f} req/s"
        + (f"  ERRORS: {errors}" if errors else ""),
        flush=True,
    )
    return run


def fmt(value: float | None, spec: str) -> str:
    return DASH if value is None else format(value, spec)


def median(runs: list[Run], target: str, pick: Callable[[Run], float | None]) -> float | None:
    values = [v for r in runs if r.target == target and (v := pick(r)) is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> str:
    return DASH if a is None or b is None or b == 0 else f"{a / b:.2f}"


def report(
    opts: Options, tools: Tools, pinning: Pinning, runs: list[Run], started: dt.datetime
) -> str:
    revision = command_output(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    targets = [t for t in TARGETS if any(r.target == t for r in runs)]
    lines = [
        "# TCP proxy benchmark",
        "",
        f"- command: `{opts.command}`",
        f"- date: {started:%Y-%m-%d %H:%M %Z}; tree at git {revision}; CPU: {cpu}",
        f"- versions: {'; '.join(f'{k} {v}' for k, v in tools.versions.items())}",
        f"- pinning: {pinning.note}; load average at start {LOAD_AT_START}",
        f"- bulk: {BULK_CONNECTIONS} connections downloading for {opts.seconds:g} s, "
        f"{BLOCK // 1024} KiB reads; redis: redis-benchmark -c {REDIS_CLIENTS} "
        f"-n {opts.requests} -t set,get",
        f"- rounds: {opts.rounds}, interleaved; medians below",
        "- nginx and HAProxy buffers: "
        + ("256 KiB (--big-buffers)" if opts.big_buffers else "their defaults, 16 KiB"),
    ]
    lines += [f"- skipped: {name}: {why}" for name, why in tools.skipped.items()]
    lines += [
        "",
        f"| target | bulk MB/s | proxy CPU {MU}s/MB | redis SET req/s | redis GET req/s "
        f"| proxy CPU {MU}s/req | runs with errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        mine = [r for r in runs if r.target == target]
        lines.append(
            f"| {target} | {fmt(median(runs, target, lambda r: r.mb_per_s), ',.0f')} "
            f"| {fmt(median(runs, target, lambda r: r.us_per_mb), '.0f')} "
            f"| {fmt(median(runs, target, lambda r: r.set_rps), ',.0f')} "
            f"| {fmt(median(runs, target, lambda r: r.get_rps), ',.0f')} "
            f"| {fmt(median(runs, target, lambda r: r.us_per_req), '.1f')} "
            f"| {sum(1 for r in mine if r.errors)}/{len(mine)} |"
        )
    lines += [
        "",
        "| Bascule / other | bulk MB/s | CPU per MB (lower is better) | redis req/s "
        "| CPU per req (lower is better) |",
        "|---|---:|---:|---:|---:|",
    ]
    for other in ("nginx", "haproxy"):
        if other not in targets or "bascule" not in targets:
            continue

        def both(pick: Callable[[Run], float | None], other: str = other) -> str:
            return ratio(median(runs, "bascule", pick), median(runs, other, pick))

        lines.append(
            f"| / {other} | {both(lambda r: r.mb_per_s)} | {both(lambda r: r.us_per_mb)} "
            f"| {both(lambda r: (r.set_rps + r.get_rps) / 2)} | {both(lambda r: r.us_per_req)} |"
        )
    errors = [r for r in runs if r.errors]
    lines += ["", *(f"- errors, round {r.round} {r.target}: {r.errors}" for r in errors)]
    return "\n".join(lines).rstrip() + "\n"


def benchmark(opts: Options, tmp: Path, services: list[Service]) -> str:
    global LOAD_AT_START
    started = dt.datetime.now().astimezone()
    LOAD_AT_START = f"{os.getloadavg()[0]:.2f}"
    if os.getloadavg()[0] > 0.5:
        print(f"# WARNING: load average {LOAD_AT_START}: the machine is busy", flush=True)
    tools = find_tools()
    pinning = pin(tools)
    source = Source()
    try:
        redis = start_redis(tools, tmp, pinning)
        services.append(redis)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not redis_ping(redis.port):
            if time.monotonic() > deadline or redis.popen.poll() is not None:
                raise BenchError("redis-server did not start:\n" + tail(redis.log))
            time.sleep(0.05)
        direct = Ports(source.port, redis.port)
        endpoints: dict[str, tuple[Service | None, Ports]] = {"direct": (None, direct)}
        for name in PROXIES:
            if name in tools.skipped:
                continue
            if name == "bascule" and not opts.bascule.exists():
                tools.skipped[name] = f"{opts.bascule} not found"
                continue
            try:
                service, ports = start_proxy(name, tools, opts, tmp, pinning, direct)
            except BenchError as exc:
                tools.skipped[name] = " ".join(str(exc).split())[:300]
                print(f"# {name} skipped: {exc}", flush=True)
                continue
            services.append(service)
            endpoints[name] = (service, ports)
        runs = []
        for round_ in range(1, opts.rounds + 1):
            for target, (proxy, ports) in endpoints.items():
                runs.append(measure(target, proxy, ports, tools, pinning, opts, round_))
        return report(opts, tools, pinning, runs, started)
    finally:
        source.close()


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    return run_benchmark(
        "bascule-bench-tcp-",
        opts.keep_tmp,
        RESULTS_FILE,
        lambda tmp, services: benchmark(opts, tmp, services),
    )


if __name__ == "__main__":
    sys.exit(main())
