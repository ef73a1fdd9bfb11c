"""A real `bascule run` for a test: a supervisor with its worker (and health) processes,
and the requests and load a test puts through it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2e.proxy import wait_until

BASCULE = [sys.executable, "-m", "bascule"]
APP_ROUTE = {"name": "app", "upstream": "app"}


class Instance:
    def __init__(self, proc: subprocess.Popen[str], path: Path, pid_file: Path) -> None:
        self.proc = proc
        self.path = path
        self.pid_file = pid_file
        self.log = ""  # what it wrote to stderr, once it has stopped

    def children(self, name: str) -> set[int]:
        """The supervisor's children that are `name` ("bascule-worker", "bascule-health")."""
        found = set()
        listed = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        for pid in map(int, listed.split()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    found.add(pid)
            except (FileNotFoundError, ProcessLookupError):  # it just ended (ENOENT or ESRCH)
                continue
        return found

    def workers(self) -> set[int]:
        return self.children("bascule-worker")

    def write(self, cfg: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(cfg))

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)


@contextmanager
def running(cfg: dict[str, Any], tmp_path: Path) -> Iterator[Instance]:
    path, pid_file = tmp_path / "bascule.yaml", tmp_path / "bascule.pid"
    cfg = {"access_log": {"enabled": False}, **cfg, "state_dir": str(tmp_path / "state")}
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
