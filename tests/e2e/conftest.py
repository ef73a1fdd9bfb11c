"""Fixtures: backends on a shared loop, and Bascule started per test from a config dict."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.backends import Backend, BackendLoop, Handler, Responder, http
from e2e.proxy import Proxy


@pytest.fixture(scope="session")
def backend_loop() -> Iterator[BackendLoop]:
    loop = BackendLoop()
    yield loop
    loop.close()


@pytest.fixture
def backend(backend_loop: BackendLoop) -> Iterator[Callable[..., Backend]]:
    """`backend(responder)` serves HTTP with a responder; `backend(handler, raw=True)` runs a
    connection handler as is."""
    started: list[Backend] = []

    def start(what: Responder | Handler, *, raw: bool = False, read_bodies: bool = True) -> Backend:
        handler = what if raw else http(what, read_bodies=read_bodies)  # type: ignore[arg-type]
        b = backend_loop.start(handler)  # type: ignore[arg-type]
        started.append(b)
        return b

    yield start
    for b in started:
        backend_loop.stop(b)


@pytest.fixture
def bascule(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Proxy]]:
    """`bascule(config_dict)` starts Bascule with an access log in tmp_path."""
    running: list[Proxy] = []

    def start(config: dict[str, Any]) -> Proxy:
        log = tmp_path / f"access-{len(running)}.log"
        proxy = Proxy({**config, "access_log": {"path": str(log)}}, log)
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        proxy.stop()
