"""Benchmark harness: wrk against a backend directly, nginx as proxy, and Bascule.

Run from the repository root:

    .venv/bin/python bench/run.py [--duration 10s] [--rounds 3] [--connections 64]
                                  [--profiles host,browser] [--quick]

Everything listens on 127.0.0.1 only and runs from a temporary prefix under /tmp; every
process started here is stopped by PID in a ``finally`` block. See bench/README.md.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "latest.md"
# Bascule as a wheel ships it (request path compiled by mypyc), built by scripts/compile.
DEFAULT_BASCULE = REPO_DIR / "bench" / "bascule-compiled"

HOST = "127.0.0.1"
TARGETS = ("direct", "nginx", "bascule")
PROXIES = ("nginx", "bascule")
PROFILES = ("host", "browser")
PROFILE_SCRIPTS: dict[str, Path | None] = {"host": None, "browser": BENCH_DIR / "browser.lua"}
THINK_SCRIPT = BENCH_DIR / "think.lua"  # --think: wrk's delay() between requests
# 100 bytes exactly: the response body every backend returns.
BODY = "bascule-bench " + "x" * 85 + "\n"
NGINX_TEMP_MODULES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
WARMUP_S = 1
PAUSE_BETWEEN_RUNS_S = 0.5
CLK_TCK = os.sysconf("SC_CLK_TCK")
UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
MU = "\u00b5"  # micro sign, for the report
DASH = "\u2013"  # en dash: "not applicable" in tables


class BenchError(Exception):
    """A setup step failed; the message says what and why."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    duration_s: int
    rounds: int
    connections: int
    profiles: tuple[str, ...]
    targets: tuple[str, ...]
    bascule: Path
    keep_tmp: bool
    command: str
    think_ms: int = 0  # each connection's pause between a response and its next request


def parse_duration(text: str) -> int:
    """'10s', '2m', '10' -> whole seconds (wrk takes whole seconds)."""
    match = re.fullmatch(r"(\d+)([smh]?)", text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: use e.g. 10s, 2m")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def parse_list(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{what}: choose from {','.join(allowed)}")
    return tuple(dict.fromkeys(items))


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--duration", type=parse_duration, default=10, help="per run (10s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument(
        "--profiles",
        type=lambda s: parse_list(s, PROFILES, "--profiles"),
        default=PROFILES,
        help="host,browser",
    )
    parser.add_argument(
        "--targets",
        type=lambda s: parse_list(s, TARGETS, "--targets"),
        default=TARGETS,
        help="direct,nginx,bascule",
    )
    parser.add_argument("--bascule", type=Path, default=DEFAULT_BASCULE, help="bascule CLI")
    parser.add_argument(
        "--think",
        type=int,
        default=0,
        metavar="MS",
        help="each connection waits MS ms between requests: latency below saturation (0)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3s")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp prefix dir")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.connections < 1 or args.think < 0:
        parser.error("--rounds and --connections must be >= 1, --think >= 0")
    return Options(
        duration_s=3 if args.quick else args.duration,
        rounds=1 if args.quick else args.rounds,
        connections=args.connections,
        profiles=args.profiles,
        targets=args.targets,
        bascule=args.bascule,
        keep_tmp=args.keep_tmp,
        command=shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        think_ms=args.think,
    )


# ----------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tools:
    nginx: str
    wrk: str
    taskset: str | None
    nginx_version: str
    wrk_version: str
    nginx_build: str


def find_binary(name: str) -> str | None:
    extra = os.pathsep.join(("/usr/sbin", "/usr/local/sbin", "/sbin"))
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra)


def install_missing(missing: list[str]) -> None:
    """apt-get install wrk/nginx-light when root; otherwise say clearly what is missing."""
    packages = ["nginx-light" if name == "nginx" else name for name in missing]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(
            f"missing: {', '.join(missing)}. Install them, e.g. "
            f"`sudo apt-get install -y {' '.join(packages)}`, then run again."
        )
    print(f"# installing {' '.join(packages)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", *packages]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(install, env=env, check=True)


def command_output(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    return (done.stdout + done.stderr).strip()


def find_tools() -> Tools:
    missing = [name for name in ("nginx", "wrk") if find_binary(name) is None]
    if missing:
        install_missing(missing)
    nginx, wrk = find_binary("nginx"), find_binary("wrk")
    if nginx is None or wrk is None:
        raise BenchError("nginx or wrk still not found after installing")
    wrk_version = command_output([wrk, "-v"]).splitlines()[0]
    build = command_output([nginx, "-V"])
    return Tools(
        nginx=nginx,
        wrk=wrk,
        taskset=find_binary("taskset"),
        nginx_version=build.splitlines()[0].removeprefix("nginx version: "),
        wrk_version=re.sub(r"\s+Copyright.*", "", wrk_version),
        nginx_build=build,
    )


@dataclass(frozen=True)
class Pinning:
    proxy: list[str]
    load: list[str]
    note: str
    proxy_cpu: int | None = None


def choose_pinning(tools: Tools) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if tools.taskset is None or len(cpus) < 2:
        why = "taskset not found" if tools.taskset is None else "fewer than 2 CPUs"
        print(f"# WARNING: no CPU pinning ({why}); numbers are less comparable", flush=True)
        return Pinning([], [], f"none ({why})")
    proxy_cpu, load_cpu = cpus[0], cpus[1]
    return Pinning(
        proxy=[tools.taskset, "-c", str(proxy_cpu)],
        load=[tools.taskset, "-c", str(load_cpu)],
        note=f"proxy on CPU {proxy_cpu}; wrk and backends on CPU {load_cpu}",
        proxy_cpu=proxy_cpu,
    )


# ------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A process this harness started (in its own session, so its group is its PID)."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    stop_signals: tuple[signal.Signals, ...]
    access_log: Path | None = None
    command: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_service(
    name: str,
    cmd: list[str],
    port: int,
    workdir: Path,
    stop_signals: tuple[signal.Signals, ...],
    access_log: Path | None = None,
) -> Service:
    log = workdir / f"{name}.out"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
        )
    return Service(name, popen, port, log, stop_signals, access_log, cmd)


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def http_get_status(port: int) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": HOST})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def wait_ready(service: Service, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll the port until it accepts, then require one real GET / -> 200."""
    deadline = time.monotonic() + timeout_s
    last = "never accepted a connection"
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise BenchError(
                f"{service.name} exited with status {service.popen.returncode}:\n"
                + tail(service.log)
            )
        try:
            with socket.create_connection((HOST, service.port), timeout=0.5):
                pass
            status = http_get_status(service.port)
            if status == 200:
                return
            last = f"GET / answered {status}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise BenchError(f"{service.name} not ready on port {service.port} ({last})")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_service(service: Service) -> None:
    """Signal by PID in order (e.g. QUIT then TERM), then KILL whatever is left of its group."""
    for sig in service.stop_signals:
        if service.popen.poll() is not None:
            break
        service.popen.send_signal(sig)
        try:
            service.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue
    if service.popen.poll() is None:
        service.popen.kill()
        service.popen.wait(STOP_TIMEOUT_S)
    pgid = service.pid  # start_new_session=True: the group id is the leader's PID
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
        time.sleep(0.5)
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)


def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        try:
            stop_service(service)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"# WARNING: stopping {service.name} (pid {service.pid}): {exc}", flush=True)


# ----------------------------------------------------------------------------- nginx


def nginx_temp_paths(tools: Tools, prefix: Path) -> str:
    """Temp-path directives for the modules this nginx build has, all under prefix."""
    lines = []
    for module in NGINX_TEMP_MODULES:
        if f"--without-http_{module}_module" in tools.nginx_build:
            continue
        lines.append(f"    {module}_temp_path {prefix / ('temp-' + module)};")
    return "\n".join(lines)


def render(template: str, out: Path, **values: str | int) -> Path:
    text = Template((BENCH_DIR / template).read_text()).substitute(values)
    out.write_text(text)
    return out


def start_nginx(
    tools: Tools, name: str, conf: Path, prefix: Path, pin: list[str], port: int
) -> Service:
    cmd = [
        *pin,
        tools.nginx,
        "-p",
        str(prefix),
        "-e",
        str(prefix / "error.log"),
        "-c",
        str(conf),
        "-g",
        "daemon off;",
    ]
    return start_service(name, cmd, port, prefix, (signal.SIGQUIT, signal.SIGTERM))


def start_backend(tools: Tools, name: str, tmp: Path, pinning: Pinning) -> Service:
    prefix = tmp / name
    prefix.mkdir()
    port = free_port()
    conf = render(
        "nginx-backend.conf.tmpl",
        prefix / "nginx.conf",
        prefix=str(prefix),
        port=port,
        body=BODY.replace("\n", "\\n"),
        temp_paths=nginx_temp_paths(tools, prefix),
    )
    return start_nginx(tools, name, conf, prefix, pinning.load, port)


def start_file_backend(
    tools: Tools, name: str, tmp: Path, pinning: Pinning, page: str, server_extra: str = ""
) -> Service:
    """An nginx backend serving `page` as a static file (text/plain) for every path."""
    prefix = tmp / name
    prefix.mkdir()
    (prefix / "page.txt").write_text(page)
    for readable in (tmp, prefix):  # nginx's workers may run as another user
        readable.chmod(0o755)
    port = free_port()
    conf = render(
        "nginx-file-backend.conf.tmpl",
        prefix / "nginx.conf",
        prefix=str(prefix),
        port=port,
        temp_paths=nginx_temp_paths(tools, prefix),
        server_extra=server_extra,
    )
    return start_nginx(tools, name, conf, prefix, pinning.load, port)


def start_nginx_proxy(
    tools: Tools,
    tmp: Path,
    pinning: Pinning,
    backends: tuple[int, int],
    workers: int = 1,
    name: str = "nginx",
    http_extra: str = "",
) -> Service:
    prefix = tmp / f"{name}-proxy"
    prefix.mkdir()
    port = free_port()
    access_log = prefix / "access.log"
    conf = render(
        "nginx-proxy.conf.tmpl",
        prefix / "nginx.conf",
        prefix=str(prefix),
        port=port,
        access_log=str(access_log),
        backend1=backends[0],
        backend2=backends[1],
        temp_paths=nginx_temp_paths(tools, prefix),
        workers=workers,
        http_extra=http_extra,
    )
    service = start_nginx(tools, name, conf, prefix, pinning.proxy, port)
    service.access_log = access_log
    return service


def start_bascule(
    bascule: Path,
    tmp: Path,
    pinning: Pinning,
    backends: tuple[int, int],
    workers: int = 1,
    name: str = "bascule",
    route_extra: str = "",
) -> Service:
    workdir = tmp / name
    workdir.mkdir()
    port = free_port()
    access_log = workdir / "bascule-access.log"
    conf = render(
        "bascule.yaml.tmpl",
        workdir / "bascule.yaml",
        port=port,
        access_log=str(access_log),
        backend1=backends[0],
        backend2=backends[1],
        workers=workers,
        route_extra=route_extra,
    )
    if bascule == DEFAULT_BASCULE:
        subprocess.run([REPO_DIR / "scripts" / "compile"], check=True)  # quick when up to date
    cmd = [*pinning.proxy, str(bascule), "run", "-c", str(conf)]
    return start_service(name, cmd, port, workdir, (signal.SIGTERM,), access_log)


# ------------------------------------------------------------------------------- CPU


def proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ..., utime, stime, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from a scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = proc_stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_busy_total(cpu: int | None) -> tuple[int, int]:
    """(busy, total) ticks of one CPU from /proc/stat; busy counts steal, not idle/iowait."""
    if cpu is None:
        return 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(v) for v in line.split()[1:9]]
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    return 0, 0


def cpu_split(root: int) -> tuple[int, int]:
    """(utime, stime) in clock ticks, summed over root and its descendants (nginx worker...)."""
    user = system = 0
    for pid in process_tree(root):
        fields = proc_stat_fields(pid)
        if fields is not None:
            user += int(fields[11])
            system += int(fields[12])
    return user, system


def cpu_ticks(root: int) -> int:
    """utime + stime (clock ticks) summed over root and its descendants."""
    return sum(cpu_split(root))


# ------------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: dict[str, int]
    non_2xx_3xx: int
    exit_code: int

    @property
    def error_count(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx_3xx

    @property
    def flagged(self) -> bool:
        return self.error_count > 0 or self.exit_code != 0

    def error_text(self) -> str:
        parts = [f"{k} {v}" for k, v in self.socket_errors.items() if v]
        if self.non_2xx_3xx:
            parts.append(f"non-2xx/3xx {self.non_2xx_3xx}")
        if self.exit_code:
            parts.append(f"wrk exit {self.exit_code}")
        return ", ".join(parts)


def to_ms(value: str, unit: str) -> float:
    return float(value) * UNIT_TO_MS[unit]


def latency_percentile(output: str, percent: str) -> float:
    match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    if not match:
        raise BenchError(f"no {percent}% latency in wrk output:\n{output}")
    return to_ms(match.group(1), match.group(2))


def parse_wrk(output: str, exit_code: int) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if not rps or not total:
        raise BenchError(f"cannot parse wrk output (exit {exit_code}):\n{output}")
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    counts = [int(n) for n in sock.groups()] if sock else [0, 0, 0, 0]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=latency_percentile(output, "50"),
        p99_ms=latency_percentile(output, "99"),
        requests=int(total.group(1)),
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), counts, strict=True)),
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        exit_code=exit_code,
    )


def wrk_command(
    tools: Tools,
    pinning: Pinning,
    profile: str,
    port: int,
    duration_s: int,
    connections: int,
    think_ms: int = 0,
) -> list[str]:
    script = PROFILE_SCRIPTS[profile]
    cmd = [*pinning.load]
    if think_ms:  # think.lua loads the profile's script, then adds the pause
        cmd += ["env", f"BENCH_THINK_MS={think_ms}", f"BENCH_PROFILE_SCRIPT={script or ''}"]
        script = THINK_SCRIPT
    cmd += [tools.wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    return [*cmd, f"http://{HOST}:{port}/"]


def run_wrk(cmd: list[str], duration_s: int) -> tuple[str, int]:
    """Run wrk; on any exit path (timeout, Ctrl-C) it is killed and reaped."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=duration_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {shlex.join(cmd)}") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return output, proc.returncode


# --------------------------------------------------------------- request head capture


def capture_request_head(tools: Tools, profile: str) -> bytes:
    """Run wrk for 1s against a one-shot socket and return the request head it sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        listener.settimeout(5)
        port = int(listener.getsockname()[1])
        head: list[bytes] = []
        thread = threading.Thread(target=_serve_one, args=(listener, head), daemon=True)
        thread.start()
        cmd = wrk_command(tools, Pinning([], [], ""), profile, port, 1, 1)
        run_wrk(cmd, 1)
        thread.join(5)
    if not head:
        raise BenchError(f"could not capture the {profile} request head from wrk")
    return head[0]


def _serve_one(listener: socket.socket, out: list[bytes]) -> None:
    """Accept until one connection sends a full request head (wrk first opens a probe)."""
    for _ in range(10):
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            head = _read_head(conn)
            if head is not None:
                out.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return


def _read_head(conn: socket.socket) -> bytes | None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"


@dataclass(frozen=True)
class HeadSize:
    total: int  # request line + header lines + final CRLF
    headers: int  # header lines only, CRLFs included
    count: int


def measure_head(head: bytes) -> HeadSize:
    rest = head.partition(b"\r\n")[2]
    header_block = rest.removesuffix(b"\r\n")
    return HeadSize(len(head), len(header_block), header_block.count(b"\r\n"))


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Run:
    round: int
    profile: str
    target: str
    wrk: WrkResult
    us_per_req: float | None
    kernel_us_per_req: float | None  # the part of us_per_req spent in the kernel (stime)
    log_lines: int | None
    proxy_cpu_busy_pct: float | None  # the whole proxy CPU, whoever used it
    proxy_pct: float | None  # the proxy's own share of it


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def reset_log(path: Path | None) -> None:
    if path is not None and path.exists():
        os.truncate(path, 0)


def settle_log_lines(path: Path | None) -> int | None:
    """Access-log lines written by the run (then truncated, so /tmp does not fill up)."""
    if path is None or not path.exists():
        return None
    time.sleep(0.6)  # Bascule writes a run's last lines within 0.5 s (metrics.SETTLE_AFTER)
    lines = count_lines(path)
    os.truncate(path, 0)
    return lines


@dataclass(frozen=True)
class SideBySide:
    """The options of the side-by-side scripts (tls, scaling, compress, cache)."""

    duration_s: int
    rounds: int
    connections: int
    bascule: Path
    keep_tmp: bool
    command: str


def parse_side_by_side(argv: Sequence[str], description: str) -> SideBySide:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=parse_duration, default=5, help="per run (5s)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument("--bascule", type=Path, default=DEFAULT_BASCULE)
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp prefix dir")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.connections < 1:
        parser.error("--rounds and --connections must be >= 1")
    return SideBySide(
        args.duration,
        args.rounds,
        args.connections,
        args.bascule,
        args.keep_tmp,
        shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    )


@dataclass(frozen=True)
class CaseRun:
    """One wrk run of one proxy on one case (an encoding, a cache hit...)."""

    round: int
    proxy: str
    case: str
    rps: float
    errors: int
    us_per_req: float | None
    p99_ms: float


def run_cases(
    rounds: int,
    cases: Sequence[tuple[str, str]],
    measure: Callable[[tuple[str, str], int], CaseRun],
) -> list[CaseRun]:
    """Measure every (proxy, case) in turn, `rounds` times, printing each result."""
    runs = []
    for round_no in range(1, rounds + 1):
        for case in cases:
            run = measure(case, round_no)
            runs.append(run)
            flag = f"  !! {run.errors} errors" if run.errors else ""
            print(
                f"round {round_no} {run.proxy:<8} {run.case:<9} {run.rps:>9,.0f} req/s  "
                f"{fmt(run.us_per_req, '7.1f')} us/req{flag}",
                flush=True,
            )
            time.sleep(PAUSE_BETWEEN_RUNS_S)
    return runs


def case_median(runs: Sequence[CaseRun], proxy: str, case: str, field: str) -> float | None:
    """The median of `field` over the runs of one proxy on one case."""
    return median_or_none([getattr(r, field) for r in runs if (r.proxy, r.case) == (proxy, case)])


def report_head(
    title: str, opts: SideBySide, tools: Tools, started: dt.datetime, setup: str
) -> list[str]:
    """The first lines of a side-by-side report: what ran, when, where, how."""
    return [
        f"# {title}",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Command: `{opts.command}`",
        f"- CPU: {cpu_model()}; nginx {tools.nginx_version}; {tools.wrk_version}; "
        f"Bascule tree: git {git_revision()}",
        f"- {opts.rounds} round(s) of {opts.duration_s} s per run, wrk -t1 -c{opts.connections}; "
        + setup,
        "",
    ]


def case_runs_table(runs: Sequence[CaseRun], case_title: str) -> list[str]:
    """The per-run table of a side-by-side report, with its error count above it."""
    lines = [
        f"Errors over all runs: {sum(r.errors for r in runs)}.",
        "",
        f"| round | proxy | {case_title} | req/s | errors | {MU}s/req | p99 ms |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.round} | {r.proxy} | {r.case} | {r.rps:,.0f} | {r.errors} | "
            f"{fmt(r.us_per_req, '.1f')} | {r.p99_ms:.2f} |"
        )
    return lines


def prepare() -> tuple[Tools, Pinning, dt.datetime]:
    """What a bench needs before it starts anything: its tools (installed if missing), a
    warning on a busy machine, the CPU pinning, and the start time."""
    tools = find_tools()
    warn_if_busy()
    return tools, choose_pinning(tools), dt.datetime.now().astimezone()


def wrk_cost(
    tools: Tools, pinning: Pinning, opts: SideBySide, proxy: Service, headers: Sequence[str] = ()
) -> tuple[WrkResult, float | None]:
    """One wrk run (host profile, `headers` added) against `proxy`: what wrk measured, and
    the proxy's CPU µs per request (all its processes)."""
    reset_log(proxy.access_log)
    cmd = wrk_command(tools, pinning, "host", proxy.port, opts.duration_s, opts.connections)
    for header in headers:
        cmd[-1:-1] = ["-H", header]
    before = cpu_ticks(proxy.pid)
    output, code = run_wrk(cmd, opts.duration_s)
    spent = cpu_ticks(proxy.pid) - before
    settle_log_lines(proxy.access_log)
    result = parse_wrk(output, code)
    return result, spent / CLK_TCK * 1e6 / result.requests if result.requests else None


def measure_run(
    tools: Tools,
    pinning: Pinning,
    opts: Options,
    profile: str,
    target: str,
    endpoint: Service,
    proxy: Service | None,
    round_no: int,
) -> Run:
    access_log = proxy.access_log if proxy else None
    reset_log(access_log)
    cmd = wrk_command(
        tools, pinning, profile, endpoint.port, opts.duration_s, opts.connections, opts.think_ms
    )
    split_before = cpu_split(proxy.pid) if proxy else (0, 0)
    cpu_before = cpu_busy_total(pinning.proxy_cpu)
    output, code = run_wrk(cmd, opts.duration_s)
    split_after = cpu_split(proxy.pid) if proxy else (0, 0)
    cpu_after = cpu_busy_total(pinning.proxy_cpu)
    before, after = sum(split_before), sum(split_after)
    result = parse_wrk(output, code)
    us_per_req = kernel_us_per_req = proxy_pct = busy_pct = None
    if proxy and result.requests:
        us_per_req = (after - before) / CLK_TCK * 1e6 / result.requests
        kernel_us_per_req = (split_after[1] - split_before[1]) / CLK_TCK * 1e6 / result.requests
    elapsed = cpu_after[1] - cpu_before[1]
    if elapsed > 0:
        busy_pct = 100 * (cpu_after[0] - cpu_before[0]) / elapsed
        proxy_pct = 100 * (after - before) / elapsed if proxy else 0.0
    log_lines = settle_log_lines(access_log)
    return Run(
        round_no,
        profile,
        target,
        result,
        us_per_req,
        kernel_us_per_req,
        log_lines,
        busy_pct,
        proxy_pct,
    )


def describe_run(run: Run, total_runs: int, index: int) -> str:
    cost = (
        f"{run.us_per_req:6.1f} us/req (kernel {fmt(run.kernel_us_per_req, '5.1f')})"
        if run.us_per_req is not None
        else " " * 28
    )
    flag = f"  !! {run.wrk.error_text()}" if run.wrk.flagged else ""
    busy = f"  proxy CPU busy {fmt(run.proxy_cpu_busy_pct, '.0f')}%"
    return (
        f"[{index:>2}/{total_runs}] round {run.round} {run.profile:<7} {run.target:<7} "
        f"{run.wrk.rps:>10,.0f} req/s  p50 {run.wrk.p50_ms:6.2f} ms  "
        f"p99 {run.wrk.p99_ms:6.2f} ms  {cost}{busy}{flag}"
    )


def schedule(opts: Options, targets: Sequence[str]) -> Iterator[tuple[int, str, str]]:
    """Interleaved: per round, per profile, direct / nginx / bascule in turn."""
    for round_no in range(1, opts.rounds + 1):
        for profile in opts.profiles:
            for target in targets:
                yield round_no, profile, target


def run_all(
    tools: Tools, pinning: Pinning, opts: Options, endpoints: dict[str, Service], direct: Service
) -> list[Run]:
    targets = [t for t in opts.targets if t == "direct" or t in endpoints]
    plan = list(schedule(opts, targets))
    runs: list[Run] = []
    for index, (round_no, profile, target) in enumerate(plan, start=1):
        endpoint = direct if target == "direct" else endpoints[target]
        proxy = None if target == "direct" else endpoint
        run = measure_run(tools, pinning, opts, profile, target, endpoint, proxy, round_no)
        runs.append(run)
        print(describe_run(run, len(plan), index), flush=True)
        time.sleep(PAUSE_BETWEEN_RUNS_S)
    return runs


def warm_up(tools: Tools, pinning: Pinning, opts: Options, endpoints: dict[str, Service]) -> None:
    for service in endpoints.values():
        cmd = wrk_command(tools, pinning, "host", service.port, WARMUP_S, opts.connections)
        run_wrk(cmd, WARMUP_S)


# ---------------------------------------------------------------------------- report


@dataclass
class Context:
    """Facts about the environment and the setup, for the report header."""

    opts: Options
    tools: Tools
    pinning: Pinning
    started: dt.datetime
    loadavg: str = field(default_factory=lambda: " ".join(read_loadavg()))
    heads: dict[str, HeadSize] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)


def read_loadavg() -> list[str]:
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return ["unknown"]


def warn_if_busy() -> None:
    load = read_loadavg()[0]
    if load != "unknown" and float(load) > 0.5:
        print(
            f"# WARNING: load average {load} before starting: other work is running; "
            "expect noisy numbers",
            flush=True,
        )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    """Short commit of the tree under test, '+dirty' when it has local changes."""
    if shutil.which("git") is None:
        return "unknown"
    try:
        rev = command_output(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
        dirty = command_output(["git", "-C", str(REPO_DIR), "status", "--porcelain"])
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def fmt(value: float | None, spec: str) -> str:
    return DASH if value is None else format(value, spec)


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(num: float | None, den: float | None) -> str:
    return "n/a" if num is None or not den else f"{num / den:.3f}"


def summary(runs: list[Run], profile: str, target: str) -> dict[str, float | None]:
    picked = [r for r in runs if r.profile == profile and r.target == target]
    return {
        "rps": median_or_none([r.wrk.rps for r in picked]),
        "p50": median_or_none([r.wrk.p50_ms for r in picked]),
        "p99": median_or_none([r.wrk.p99_ms for r in picked]),
        "us": median_or_none([r.us_per_req for r in picked]),
        "kernel_us": median_or_none([r.kernel_us_per_req for r in picked]),
        "n": len(picked),
        "flagged": sum(r.wrk.flagged for r in picked),
    }


def header_section(ctx: Context) -> list[str]:
    o, t = ctx.opts, ctx.tools
    lines = [
        "# Bascule benchmark",
        "",
        f"- Date: {ctx.started.isoformat(timespec='seconds')}",
        f"- Command: `{o.command}`",
        f"- CPU: {cpu_model()} ({os.cpu_count()} CPUs); kernel {platform.release()}",
        f"- nginx: {t.nginx_version}; wrk: {t.wrk_version}; Bascule tree: git {git_revision()}",
        f"- Load: `wrk -t1 -c{o.connections} -d{o.duration_s}s --latency` (keep-alive), "
        f"{o.rounds} round(s), interleaved {' / '.join(o.targets)} per round and profile"
        + (
            f"; **think time {o.think_ms} ms** between a response and the next request on each "
            "connection (`bench/think.lua`): a load below saturation, so compare the latencies "
            "(req/s follow from the think time)"
            if o.think_ms
            else ""
        ),
        f"- Pinning: {ctx.pinning.note}",
        f"- Load average at start: {ctx.loadavg}",
        f"- Backends: 2 x nginx (1 worker, keep-alive, no access log), {len(BODY)}-byte body",
    ]
    for profile, head in ctx.heads.items():
        lines.append(
            f"- Request head, `{profile}` profile: {head.total} bytes in all, "
            f"{head.headers} bytes of {head.count} header lines"
        )
    for name, command in ctx.commands.items():
        lines.append(f"- {name}: `{command}`")
    for name, reason in ctx.skipped.items():
        lines.append(f"- **{name} skipped**: {reason}")
    return lines


def profile_section(runs: list[Run], profile: str, targets: Sequence[str]) -> list[str]:
    lines = [
        "",
        f"## Profile `{profile}` (median over rounds)",
        "",
        f"| target | req/s | p50 ms | p99 ms | {MU}s/req (proxy CPU) | of which kernel "
        "| runs with errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        s = summary(runs, profile, target)
        if not s["n"]:
            continue
        lines.append(
            f"| {target} | {fmt(s['rps'], ',.0f')} | {fmt(s['p50'], '.3f')} | "
            f"{fmt(s['p99'], '.3f')} | {fmt(s['us'], '.1f')} | {fmt(s['kernel_us'], '.1f')} | "
            f"{int(s['flagged'] or 0)}/{int(s['n'] or 0)} |"
        )
    return lines


def ratio_section(runs: list[Run], profiles: Sequence[str]) -> list[str]:
    lines = [
        "",
        "## Bascule / nginx",
        "",
        f"| profile | req/s ratio (higher is better) | {MU}s/req ratio (lower is better) |",
        "|---|---:|---:|",
    ]
    for profile in profiles:
        bascule, nginx = summary(runs, profile, "bascule"), summary(runs, profile, "nginx")
        lines.append(
            f"| {profile} | {ratio(bascule['rps'], nginx['rps'])} | "
            f"{ratio(bascule['us'], nginx['us'])} |"
        )
    return lines


def runs_section(runs: list[Run]) -> list[str]:
    lines = [
        "",
        "## All runs, in order",
        "",
        f"| round | profile | target | req/s | p50 ms | p99 ms | {MU}s/req | requests "
        "| access-log lines | proxy CPU busy % | of which proxy % | errors |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        errors = f"**{r.wrk.error_text()}**" if r.wrk.flagged else ""
        log_lines = DASH if r.log_lines is None else f"{r.log_lines:,}"
        lines.append(
            f"| {r.round} | {r.profile} | {r.target} | {r.wrk.rps:,.0f} | {r.wrk.p50_ms:.3f} | "
            f"{r.wrk.p99_ms:.3f} | {fmt(r.us_per_req, '.1f')} | {r.wrk.requests:,} | "
            f"{log_lines} | {fmt(r.proxy_cpu_busy_pct, '.0f')} | {fmt(r.proxy_pct, '.0f')} | "
            f"{errors} |"
        )
    return lines


def render_report(ctx: Context, runs: list[Run]) -> str:
    lines = header_section(ctx)
    for profile in ctx.opts.profiles:
        lines += profile_section(runs, profile, ctx.opts.targets)
    if "bascule" in ctx.opts.targets and "nginx" in ctx.opts.targets:
        lines += ratio_section(runs, ctx.opts.profiles)
    lines += runs_section(runs)
    lines += [
        "",
        f"{MU}s/req = the proxy's utime+stime (all its processes) over the run / requests "
        "completed. Runs with socket errors or non-2xx/3xx responses are flagged in bold. "
        "Proxy CPU busy % is the whole pinned proxy CPU during the run (/proc/stat, steal "
        "included); well above the proxy's own % (or above ~0 in direct runs) means something "
        "else was running there and the run is noisy.",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ main


def start_endpoints(
    ctx: Context, tmp: Path, services: list[Service]
) -> tuple[Service, dict[str, Service]]:
    """Start the backends and the proxies; a proxy that fails to come up is skipped."""
    tools, pinning, opts = ctx.tools, ctx.pinning, ctx.opts
    backends = [start_backend(tools, name, tmp, pinning) for name in ("backend1", "backend2")]
    services += backends
    for backend in backends:
        wait_ready(backend)
    ports = (backends[0].port, backends[1].port)
    endpoints: dict[str, Service] = {}
    if "nginx" in opts.targets:
        nginx = start_nginx_proxy(tools, tmp, pinning, ports)
        services.append(nginx)
        wait_ready(nginx)
        endpoints["nginx"] = nginx
        ctx.commands["nginx proxy"] = shlex.join(nginx.command)
    if "bascule" in opts.targets:
        bascule = try_start_bascule(ctx, tmp, ports, services)
        if bascule is not None:
            endpoints["bascule"] = bascule
    return backends[0], endpoints


def try_start_bascule(
    ctx: Context, tmp: Path, ports: tuple[int, int], services: list[Service]
) -> Service | None:
    if not ctx.opts.bascule.exists():
        ctx.skipped["bascule"] = f"{ctx.opts.bascule} not found"
        return None
    bascule = start_bascule(ctx.opts.bascule, tmp, ctx.pinning, ports)
    services.append(bascule)
    ctx.commands["bascule"] = shlex.join(bascule.command)
    try:
        wait_ready(bascule)
    except BenchError as exc:
        ctx.skipped["bascule"] = " ".join(str(exc).split())[:400]
        print(f"# Bascule skipped: {exc}", flush=True)
        stop_service(bascule)
        return None
    return bascule


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def benchmark(ctx: Context, tmp: Path, services: list[Service]) -> str:
    for profile in ctx.opts.profiles:
        ctx.heads[profile] = measure_head(capture_request_head(ctx.tools, profile))
        head = ctx.heads[profile]
        print(f"# {profile}: request head {head.total} B, header lines {head.headers} B")
    direct, endpoints = start_endpoints(ctx, tmp, services)
    warm_up(ctx.tools, ctx.pinning, ctx.opts, {"direct": direct, **endpoints})
    runs = run_all(ctx.tools, ctx.pinning, ctx.opts, endpoints, direct)
    return render_report(ctx, runs)


def run_benchmark(
    prefix: str, keep_tmp: bool, results: Path, work: Callable[[Path, list[Service]], str]
) -> int:
    """What every bench script's main does around `work(tmp, services)`, which returns the
    report: a temporary directory, the report written and printed, clear errors, and every
    process it started stopped by PID whatever happens."""
    signal.signal(signal.SIGTERM, on_sigterm)
    services: list[Service] = []
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        text = work(tmp, services)
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(text)
        print("\n" + text, flush=True)
        print(f"# written to {results.relative_to(REPO_DIR)}", flush=True)
        return 0
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        stop_all(services)
        if keep_tmp:
            print(f"# temp files kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)

    def work(tmp: Path, services: list[Service]) -> str:
        tools = find_tools()
        warn_if_busy()
        ctx = Context(opts, tools, choose_pinning(tools), dt.datetime.now().astimezone())
        return benchmark(ctx, tmp, services)

    return run_benchmark("bascule-bench-", opts.keep_tmp, RESULTS_FILE, work)


if __name__ == "__main__":
    sys.exit(main())
