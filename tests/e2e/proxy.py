"""Bascule in-process: its own uvloop loop in a background thread, listening on port 0."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bascule.config import BindAddress, load_text
from bascule.net.event_loop import new_event_loop
from bascule.runtime.server import serve
from e2e.backends import Backend


class Proxy:
    def __init__(self, config: dict[str, Any], access_log: Path) -> None:
        self.access_log = access_log
        loaded = load_text(json.dumps(config), "e2e.yaml")  # JSON is YAML
        cfg = loaded.config
        # The config contract refuses port 0; the harness wants the kernel to pick one.
        listeners = [
            lc.model_copy(update={"bind": BindAddress("127.0.0.1", 0)}) for lc in cfg.listeners
        ]
        self.config = cfg.model_copy(update={"listeners": listeners})
        self.loop = new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError("Bascule did not start") from self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        def ready(bound: list[tuple[str, str, int]]) -> None:
            self.port = bound[0][2]
            self._ready.set()

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve(self.config, stop=self._stop, on_ready=ready)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "Bascule did not stop"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the proxy's loop and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def task_count(self) -> int:
        return int(self.call(lambda: len(asyncio.all_tasks()) - 1))  # minus the probe

    def log_lines(self, count: int = 1, timeout: float = 3.0) -> list[dict[str, Any]]:
        """The access log, once it holds at least `count` lines (it is flushed every 0.5 s)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.access_log.read_text() if self.access_log.exists() else ""
            text = text[: text.rfind("\n") + 1]  # a line still being written is not read
            lines = [json.loads(line) for line in text.splitlines()]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines

    def last_log(self) -> dict[str, Any]:
        lines = self.log_lines()
        assert lines, "no access log line"
        return lines[-1]


def config(
    *targets: Backend | int | str,
    route: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
    listener: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    upstreams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A config: one listener, one route (or `routes`) to upstream `app` over `targets`."""
    if routes is None:
        routes = [{"name": "app", "upstream": "app", **(route or {})}]
    if upstreams is None:
        upstreams = {
            "app": {"targets": [{"address": _address(t)} for t in targets], **(upstream or {})}
        }
    return {
        "drain_timeout": "1s",
        "listeners": [{"name": "public", "bind": "127.0.0.1:1", **(listener or {})}],
        "routes": routes,
        "upstreams": upstreams,
    }


def _address(target: Backend | int | str) -> str:
    if isinstance(target, Backend):
        return target.address
    if isinstance(target, int):
        return f"127.0.0.1:{target}"
    return target


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_until(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def weights(*pairs: tuple[Backend, int]) -> Iterable[dict[str, Any]]:
    return [{"address": b.address, "weight": w} for b, w in pairs]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True
