"""The real `bascule run`: worker processes under a supervisor, reloads under load, crashes,
and the signals an operator sends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2e.backends import named
from e2e.proxy import accepts, config, free_port, wait_until

BASCULE = [sys.executable, "-m", "bascule"]
APP_ROUTE = {"name": "app", "upstream": "app"}


class Instance:
    def __init__(self, proc: subprocess.Popen[str], path: Path, pid_file: Path) -> None:
        self.proc = proc
        self.path = path
        self.pid_file = pid_file
        self.log = ""  # what it wrote to stderr, once it has stopped

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def write(self, cfg: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(cfg))

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)


@contextmanager
def running(cfg: dict[str, Any], tmp_path: Path) -> Iterator[Instance]:
    path, pid_file = tmp_path / "bascule.yaml", tmp_path / "bascule.pid"
    cfg = {**cfg, "access_log": {"enabled": False}, "state_dir": str(tmp_path / "state")}
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [*BASCULE, "run", "-c", str(path), "--pid-file", str(pid_file)],
        stderr=subprocess.PIPE,
        text=True,
    )
    instance = Instance(proc, path, pid_file)
    try:
        port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        # the socket listens before the workers exist: wait for an answer, not a connect
        answered = wait_until(lambda: get(port, "/ready").startswith(b"HTTP/1.1"), timeout=15)
        assert answered, "bascule never answered"
        yield instance
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            instance.log = proc.stderr.read()
            proc.stderr.close()


def listening(port: int, **extra: Any) -> dict[str, Any]:
    """Config arguments: listen on `port`, with /ready answered by Bascule itself."""
    ready = {"name": "ready", "match": {"path_exact": "/ready"}, "respond": {"status": 200}}
    return {"listener": {"bind": f"127.0.0.1:{port}"}, "routes": [ready, APP_ROUTE], **extra}


def get(port: int, path: str = "/") -> bytes:
    """One request on a new connection: status line and body, or b"" if refused/reset."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data
    except OSError:
        return b""


def steady_load(port: int, stop: threading.Event, results: list[bytes], workers: int = 4) -> list:
    def loop() -> None:
        while not stop.is_set():
            results.append(get(port))

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    return threads


def failures(results: list[bytes]) -> list[bytes]:
    return [r[:40] for r in results if not r.startswith(b"HTTP/1.1 200")]


def test_workers_share_the_listener(backend, tmp_path):
    port = free_port()
    cfg = config(backend(named("a")), **listening(port))
    with running({**cfg, "workers": 2}, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2)
        assert all(get(port).endswith(b"a") for _ in range(20))


def test_ten_reloads_under_load_fail_no_request(backend, tmp_path):
    port = free_port()
    a, b = backend(named("a")), backend(named("b"))
    with running(config(a, **listening(port)), tmp_path) as bascule:
        stop, results = threading.Event(), []
        threads = steady_load(port, stop, results)
        try:
            for n in range(10):
                first = bascule.workers()
                bascule.write(config(a if n % 2 else b, **listening(port)))
                bascule.reload()
                assert wait_until(lambda first=first: not bascule.workers() & first, timeout=10)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert len(results) > 100
    assert failures(results) == []
    served = {r.rsplit(b"\r\n", 1)[-1] for r in results}
    assert served == {b"a", b"b"}  # both configs served in turn


def test_an_invalid_reload_changes_nothing(backend, tmp_path):
    port = free_port()
    with running(config(backend(named("a")), **listening(port)), tmp_path) as bascule:
        workers = bascule.workers()
        bascule.path.write_text("listeners: [{name: main, bind: 127.0.0.1:notaport}]\n")
        bascule.reload()
        time.sleep(1.0)
        assert bascule.workers() == workers
        assert get(port).endswith(b"a")
    assert "reload refused, the running config stays" in bascule.log


def test_a_removed_listener_stops_accepting_and_a_new_one_starts(backend, tmp_path):
    first, second = free_port(), free_port()
    target = backend(named("a"))
    cfg = config(target, **listening(first))
    cfg["listeners"].append({"name": "extra", "bind": f"127.0.0.1:{second}"})
    with running(cfg, tmp_path) as bascule:
        assert get(second).endswith(b"a")
        third = free_port()
        bascule.write(config(target, **listening(third)))
        bascule.reload()
        assert wait_until(lambda: not accepts(second), timeout=10)
        assert wait_until(lambda: not accepts(first), timeout=10)
        assert get(third).endswith(b"a")


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(backend, tmp_path):
    port = free_port()
    cfg = config(backend(named("a", 0.01)), **listening(port))
    with running({**cfg, "workers": 2}, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2)
        stop, results = threading.Event(), []
        threads = steady_load(port, stop, results)
        time.sleep(0.5)
        victim = min(bascule.workers())
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(bascule.workers() - {victim}) == 2, timeout=10)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
    assert len(failures(results)) <= 4  # at most one in flight per client on the victim
    assert f"worker {victim} was killed by SIGKILL" in bascule.log


def test_sigquit_stops_at_once(backend, tmp_path):
    port = free_port()
    with running(config(backend(named("a", 5.0)), **listening(port)), tmp_path) as bascule:
        slow = threading.Thread(target=get, args=(port,))
        slow.start()
        time.sleep(0.3)
        started = time.monotonic()
        bascule.proc.send_signal(signal.SIGQUIT)
        assert bascule.proc.wait(5) == 0
        assert time.monotonic() - started < 2.0  # not the 5 s the request would take
        slow.join()
    assert not bascule.pid_file.exists()


def test_bascule_reload_checks_the_file_then_signals(backend, tmp_path):
    port = free_port()
    a, b = backend(named("a")), backend(named("b"))
    with running(config(a, **listening(port)), tmp_path) as bascule:
        bascule.path.write_text("listeners: []\n")
        command = [*BASCULE, "reload", "-c", str(bascule.path), "--pid-file", str(bascule.pid_file)]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert refused.returncode == 2
        assert "listeners" in refused.stderr
        bascule.write(config(b, **listening(port)))
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        assert wait_until(lambda: get(port).endswith(b"b"), timeout=10)


def test_a_second_instance_with_the_same_pid_file_refuses_to_start(backend, tmp_path):
    port = free_port()
    with running(config(backend(named("a")), **listening(port)), tmp_path) as bascule:
        other = subprocess.run(
            [*BASCULE, "run", "-c", str(bascule.path), "--pid-file", str(bascule.pid_file)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert other.returncode == 1
    assert "names a running Bascule" in other.stderr
