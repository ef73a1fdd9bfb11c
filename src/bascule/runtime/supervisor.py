"""The supervisor: one process that owns the listening sockets and runs the workers.

It binds every listener once and forks `workers` processes that inherit the sockets and
serve them (`runtime.server.serve`). Because the sockets belong to the supervisor, a
listening socket is never closed while its listener exists: during a reload, connections
wait in the kernel's accept queue for a new worker instead of being refused.

Signals (to the supervisor):
- SIGHUP: reload. The file is validated first; a bad one is reported as `bascule check`
  would and nothing changes. A good one starts a new generation of workers on it; once
  they all accept, the old generation drains (finishes in-flight requests within
  `drain_timeout`) and exits. Sockets of listeners that are gone are closed after that.
- SIGTERM / SIGINT: graceful stop. Workers stop accepting, drain, exit; then the supervisor
  exits 0.
- SIGQUIT: immediate stop. Workers are killed; nothing drains.
- SIGUSR1: every worker reopens its access log file (after logrotate moved it).
A worker that dies unexpectedly is logged with how it died and replaced.

Health checks run once per node, in a health process beside the workers
(`runtime.health_process`), when the config has any. It writes each result to a
`HealthBoard` in shared memory made here before the first fork, and every worker follows
the board. The board outlives the processes: a reload replaces the health process with
one on the new config (after the new workers accept), and it starts from what the board
says, so health and slow start carry over for the targets that stay. A health process
that dies is restarted like a worker.

The admin listener (`admin.bind`) is served by an admin process, bound here like every
listener so it never refuses a connection across a reload. The node's metrics come from a
telemetry directory made here (`telemetry.node`): each worker writes its totals there,
this process folds the totals of every worker that exits into the node's, and the admin
process adds them up at each scrape. So the node is one set of series, whose counters do
not go down when workers are replaced.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import select
import signal
import socket
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bascule import config as cfg
from bascule.net import tls
from bascule.net.listener import BACKLOG, raise_open_file_limit
from bascule.telemetry.node import TelemetryDir
from bascule.upstream.health_board import HealthBoard

log = logging.getLogger("bascule.supervisor")

HANDLED = {
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGCHLD,
    signal.SIGUSR1,
}
READY_TIMEOUT = 15.0  # seconds new workers have to start accepting during a reload
RESTART_BACKOFF = 1.0  # a worker that crashes right after starting is restarted after this
KILL_GRACE = 5.0  # beyond drain_timeout, before workers that will not stop are killed
HELPER_STOP_TIMEOUT = 5.0  # for a replaced health or admin process to stop before it is killed

Key = tuple[str, int]  # a listener's bind address


def worker_count(workers: int | str) -> int:
    if workers == "auto":
        return os.cpu_count() or 1
    return int(workers)


@dataclass
class Generation:
    """The workers of one config."""

    config: cfg.Config
    pids: set[int] = field(default_factory=set)
    stopping: bool = False
    # made once, before the first fork: its workers (and their replacements) then share one
    # TLS session-ticket key, so a client resumes its session on whichever worker it reaches
    tls_contexts: dict[str, ssl.SSLContext] | None = None


class Supervisor:
    def __init__(self, path: str, loaded: cfg.LoadedConfig, pid_file: Path | None) -> None:
        self.path = path
        self.pid_file = pid_file
        self.current = Generation(loaded.config)
        self.old: list[Generation] = []
        self.sockets: dict[Key, socket.socket] = {}
        self.started: dict[int, float] = {}  # pid -> when it was started
        self.board = HealthBoard.create()  # before any fork: every process shares it
        self.telemetry = TelemetryDir.create()
        self.helpers: dict[str, int] = {}  # "health" / "admin" -> the pid of that process
        self.reloads = {"ok": 0, "failed": 0}
        self.last_reload: dict[str, object] | None = None
        self.started_at = time.time()

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        raise_open_file_limit()  # before forking: the workers inherit it
        self._bind(self.current.config)
        if self.pid_file is not None:
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(f"{os.getpid()}\n")
        try:
            self._write_status()
            self._start_helpers(self.current.config)
            if not self._start_generation(self.current, wait_ready=True):
                self._kill(self.current.pids)
                return 1
            log.info(
                "supervisor %d: %d worker(s) serving %s",
                os.getpid(),
                len(self.current.pids),
                self.path,
            )
            return self._loop()
        finally:
            for sock in self.sockets.values():
                sock.close()
            if self.pid_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.pid_file.unlink()
            with contextlib.suppress(OSError):
                self.telemetry.remove()

    def _loop(self) -> int:
        while True:
            info = signal.sigtimedwait(HANDLED, 1.0)
            if info is None:
                continue
            sig = info.si_signo
            if sig == signal.SIGCHLD:
                self._reap()
            elif sig == signal.SIGHUP:
                self._reload()
            elif sig == signal.SIGUSR1:
                log.info("SIGUSR1: the workers reopen their access logs")
                for pid in self.current.pids.union(*(g.pids for g in self.old)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGUSR1)
            elif sig == signal.SIGQUIT:
                log.warning("SIGQUIT: stopping at once, without draining")
                self.current.stopping = True
                self._kill(self._all_pids())
                return 0
            else:
                return self._stop(signal.Signals(sig).name)

    def _all_pids(self) -> set[int]:
        helpers = set(self.helpers.values())
        return self.current.pids.union(helpers, *(g.pids for g in self.old))

    # -- workers -------------------------------------------------------------------------

    def _start_generation(
        self, generation: Generation, *, wait_ready: bool, count: int | None = None
    ) -> bool:
        """Fork the generation's workers (or `count` more of them); with `wait_ready`, True
        once all accept, False if one died or did not get there in time."""
        ready_pipes = []
        if generation.tls_contexts is None:
            generation.tls_contexts = tls.server_contexts(generation.config)
        for _ in range(worker_count(generation.config.workers) if count is None else count):
            pid, ready = self._fork(generation.config, generation.tls_contexts)
            generation.pids.add(pid)
            ready_pipes.append(ready)
        if not wait_ready:
            for fd in ready_pipes:
                os.close(fd)
            return True
        return _all_ready(ready_pipes, READY_TIMEOUT)

    def _fork(self, config: cfg.Config, contexts: dict[str, ssl.SSLContext]) -> tuple[int, int]:
        """Start one worker on `config`; returns its pid and a pipe it writes to once ready."""
        read_end, write_end = os.pipe()
        pid = fork_frozen()
        if pid == 0:  # the worker
            os.close(read_end)
            mine = self._sockets_for(config)
            for sock in set(self.sockets.values()) - set(mine.values()):
                sock.close()  # a listener being removed must not live on in a new worker
            os._exit(_worker(config, mine, contexts, self.board, self.telemetry, write_end))
        os.close(write_end)
        self.started[pid] = time.monotonic()
        return pid, read_end

    def _start_helpers(
        self, config: cfg.Config, kinds: Iterable[str] = ("health", "admin")
    ) -> None:
        """Fork the health process and the admin process `config` asks for."""
        from bascule.runtime.health_process import has_health_checks

        for kind in kinds:
            if kind == "health" and not has_health_checks(config):
                continue
            if kind == "admin" and config.admin is None:
                continue
            pid = fork_frozen()
            if pid == 0:
                os._exit(self._helper_body(kind, config))
            self.helpers[kind] = pid
            self.started[pid] = time.monotonic()
            log.info("%s process %d started", kind, pid)

    def _helper_body(self, kind: str, config: cfg.Config) -> int:
        """In the forked child: close what it must not hold, then run."""
        admin = None
        if kind == "admin":
            assert config.admin is not None
            admin = self.sockets[(config.admin.bind.host, config.admin.bind.port)]
        for sock in self.sockets.values():
            if sock is not admin:
                sock.close()
        if admin is not None:
            from bascule.runtime.admin_process import read_token, run_admin

            assert config.admin is not None
            path = config.admin.token_file
            token = read_token(path) if path is not None else None  # checked before forking
            return _child(kind, lambda: run_admin(admin, self.telemetry, self.board, token))
        from bascule.runtime.health_process import check_health

        return _child(kind, lambda: check_health(config, self.board))

    def _replace_helpers(self, config: cfg.Config) -> None:
        """Stop the helper processes, then start those of `config`: never two writing the
        health board at once. The pause between is a few milliseconds."""
        old, self.helpers = self.helpers, {}  # reaped as retired, not restarted
        for kind, pid in old.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _reaped(pid, HELPER_STOP_TIMEOUT):
                log.error("%s process %d did not stop in time; killing it", kind, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _reaped(pid, None)
            self.started.pop(pid, None)
        self._start_helpers(config)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            started = self.started.pop(pid, time.monotonic())
            kind = next((k for k, p in self.helpers.items() if p == pid), None)
            if kind is not None:
                del self.helpers[kind]
                if not self.current.stopping:
                    log.error(
                        "%s process %d %s; starting another", kind, pid, _how_it_ended(status)
                    )
                    if time.monotonic() - started < RESTART_BACKOFF:
                        time.sleep(RESTART_BACKOFF)
                    self._start_helpers(self.current.config, (kind,))
                continue
            self.telemetry.fold(pid)  # a worker: its counters stay in the node's
            for old in list(self.old):
                if pid in old.pids:
                    old.pids.discard(pid)
                    if not old.pids:
                        self.old.remove(old)
                        self._close_unused()
                    break
            else:
                if pid in self.current.pids:
                    self.current.pids.discard(pid)
                    if not self.current.stopping:
                        log.error("worker %d %s; starting another", pid, _how_it_ended(status))
                        if time.monotonic() - started < RESTART_BACKOFF:
                            time.sleep(RESTART_BACKOFF)  # a crash loop must not spin
                        self._start_generation(self.current, wait_ready=False, count=1)

    def _kill(self, pids: Iterable[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._wait_all(0.0)

    def _stop(self, name: str) -> int:
        drain = self.current.config.drain_timeout
        log.info("%s: stopping; workers drain for up to %gs", name, drain)
        self.current.stopping = True
        pids = self._all_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if not self._wait_all(drain + KILL_GRACE):
            log.error("workers did not stop in time; killing them")
            self._kill(self._all_pids())
        return 0

    def _wait_all(self, timeout: float) -> bool:
        """Reap workers until none is left (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while self._all_pids():
            self._reap()
            if not self._all_pids():
                break
            if time.monotonic() >= deadline and timeout:
                return False
            signal.sigtimedwait({signal.SIGCHLD}, 0.1)
        return True

    # -- reload --------------------------------------------------------------------------

    def _reload(self) -> None:
        log.info("SIGHUP: reloading %s", self.path)
        problem = self._try_reload()
        if problem is None:
            self.reloads["ok"] += 1
        else:
            self.reloads["failed"] += 1
            log.error("%s", problem)
        self.last_reload = {"at": time.time(), "ok": problem is None, "error": problem}
        self._write_status()

    def _try_reload(self) -> str | None:
        """Reload the file; None once the new generation serves, else what went wrong (the
        running config stays)."""
        from bascule.runtime.server import Unsupported, check_supported

        refused = "reload refused, the running config stays"
        try:
            loaded = cfg.load(self.path)
            check_supported(loaded.config)
        except cfg.ConfigError as exc:
            return f"{refused}:\n{exc}"
        except (Unsupported, OSError) as exc:
            return f"{refused}: {self.path}: {exc}"
        for warning in loaded.warnings:
            log.warning("%s", warning)
        try:
            self._bind(loaded.config)
        except OSError as exc:
            self._close_unused()
            return f"{refused}: {exc}"
        fresh = Generation(loaded.config)
        if not self._start_generation(fresh, wait_ready=True):
            fresh.stopping = True
            self._kill(fresh.pids)
            self._close_unused()
            return "reload failed: the new workers did not start; the running config stays"
        retired, self.current = self.current, fresh
        self.telemetry.clear_controls()  # the new file rules; runtime changes were until now
        self._replace_helpers(fresh.config)
        retired.stopping = True
        self.old.append(retired)
        for pid in retired.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # stop accepting, drain, exit
        log.info("reloaded: %d new worker(s); the old ones drain", len(fresh.pids))
        return None

    def _write_status(self) -> None:
        """What the admin API says of the node (`node.json` in the telemetry directory)."""
        config_file = Path(self.path)
        try:
            digest = hashlib.sha256(config_file.read_bytes()).hexdigest()
        except OSError:
            digest = None
        self.telemetry.write(
            "node.json",
            {
                "pid": os.getpid(),
                "started": self.started_at,
                "config": {"file": str(config_file.resolve()), "sha256": digest},
                "workers": worker_count(self.current.config.workers),
                "reloads": self.reloads,
                "last_reload": self.last_reload,
            },
        )

    # -- sockets -------------------------------------------------------------------------

    def _bind(self, config: cfg.Config) -> None:
        """Open a listening socket for each listener of `config` that has none yet."""
        opened: list[Key] = []
        try:
            for key in _binds(config):
                if key not in self.sockets:
                    self.sockets[key] = _listening_socket(*key)
                    opened.append(key)
        except OSError:
            for key in opened:
                self.sockets.pop(key).close()
            raise

    def _sockets_for(self, config: cfg.Config) -> dict[str, socket.socket]:
        return {
            listener.name: self.sockets[(listener.bind.host, listener.bind.port)]
            for listener in config.listeners
        }

    def _close_unused(self) -> None:
        """Close the sockets of listeners no generation still has."""
        used = {
            key for generation in [self.current, *self.old] for key in _binds(generation.config)
        }
        for key in list(self.sockets):
            if key not in used:
                self.sockets.pop(key).close()
                log.info("listener on %s:%d closed", *key)


def _binds(config: cfg.Config) -> list[Key]:
    """Every address `config` listens on: its listeners', and the admin listener's."""
    keys = [(listener.bind.host, listener.bind.port) for listener in config.listeners]
    if config.admin is not None:
        keys.append((config.admin.bind.host, config.admin.bind.port))
    return keys


def _listening_socket(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _all_ready(pipes: list[int], timeout: float) -> bool:
    """Wait for one byte on each pipe (a worker accepting); False if one closed first or
    the time ran out."""
    deadline = time.monotonic() + timeout
    waiting = set(pipes)
    ok = True
    try:
        while waiting and ok:
            left = deadline - time.monotonic()
            if left <= 0:
                ok = False
                break
            readable, _, _ = select.select(list(waiting), [], [], left)
            for fd in readable:
                ok = ok and os.read(fd, 1) == b"!"
                waiting.discard(fd)
    finally:
        for fd in pipes:
            os.close(fd)
    return ok


def _reaped(pid: int, timeout: float | None) -> bool:
    """Wait for child `pid` to exit and reap it; False if `timeout` passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _become(name: str) -> None:
    """Turn a freshly forked child into `name`, as `ps` and `top` show it. It takes the
    signals the supervisor blocked; reloads stay the supervisor's business."""
    with contextlib.suppress(OSError):  # not Linux: keep the supervisor's name
        Path("/proc/self/comm").write_text(name)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until a worker's loop handles it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def _child(kind: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """The body of a health or admin process: run `main()` on a fresh event loop."""
    from bascule.net.event_loop import run

    _become(f"bascule-{kind}")
    try:
        return run(main())
    except Exception:
        log.exception("%s process %d failed", kind, os.getpid())
        return 1


def fork_frozen() -> int:
    """`os.fork()`, with every object this process holds frozen for the child (`gc.freeze`).

    The child's garbage collector then never walks the heap it inherited. Otherwise its
    first full collection, due within its first few hundred requests, visits all of it and
    writes to every page (copy on write): 62 ms measured in a fresh worker, a stall every
    request then in flight waits out. This process, the supervisor, collects as before.
    """
    gc.freeze()
    pid = os.fork()
    if pid != 0:
        gc.unfreeze()
    return pid


def _worker(
    config: cfg.Config,
    sockets: dict[str, socket.socket],
    contexts: dict[str, ssl.SSLContext],
    board: HealthBoard,
    telemetry: TelemetryDir,
    ready: int,
) -> int:
    """The body of a worker process: serve `config` on the inherited sockets."""
    from bascule.net.event_loop import run
    from bascule.runtime.server import serve

    _become("bascule-worker")

    def on_ready(_: list[tuple[str, str, int]]) -> None:
        with contextlib.suppress(OSError):  # a replacement worker: nobody waits to hear
            os.write(ready, b"!")
        os.close(ready)

    try:
        return run(
            serve(
                config,
                sockets=sockets,
                ssl_contexts=contexts,
                board=board,
                telemetry=telemetry,
                on_ready=on_ready,
            )
        )
    except Exception:
        log.exception("worker %d failed", os.getpid())
        return 1


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def read_pid(pid_file: Path) -> int | None:
    """The pid of a running supervisor recorded in `pid_file`, or None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid
