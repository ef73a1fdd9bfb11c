"""Passive outlier detection end to end: targets that fail real requests are ejected for a
window, come back after it, and never more than max_ejected_percent of them at once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from e2e.backends import Backend, Request, fixed, refused_port
from e2e.proxy import Proxy, config, wait_until
from e2e.wire import Wire


class Service:
    """A target whose application status the test switches; its health endpoint says 200."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name = name
        self.status = status

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        status = 200 if request.path.startswith("/healthz") else self.status
        return await fixed(status, self.name.encode())(request, writer)


def served(backend: Backend) -> int:
    return sum(not r.path.startswith("/healthz") for r in backend.requests)


def get(proxy: Proxy) -> int:
    with Wire(proxy.port) as wire:
        return wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status


def outlier(**overrides: Any) -> dict[str, Any]:
    return {
        "consecutive_failures": 3,
        "base_ejection": "300ms",
        "max_ejection": "1s",
        "max_ejected_percent": 50,
        **overrides,
    }


@pytest.fixture
def outlier_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bascule")
    return caplog


def when(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 3.0) -> float | None:
    """When (time.time()) the first log line containing `text` was written."""

    def find() -> float | None:
        for record in list(caplog.records):
            if text in record.getMessage():
                return record.created
        return None

    wait_until(lambda: find() is not None, timeout)
    return find()


def test_consecutive_5xx_eject_a_target_until_its_window_ends(backend, bascule, outlier_log):
    broken, fine = Service("broken", 500), Service("fine")
    a, b = backend(broken.respond), backend(fine.respond)
    proxy = bascule(config(a, b, upstream={"outlier_detection": outlier()}))
    statuses = [get(proxy) for _ in range(6)]  # round robin: three each
    assert statuses.count(500) == 3
    assert served(a) == 3
    ejected = when(outlier_log, f"target {a.address} of upstream app ejected for 300ms")
    assert ejected is not None
    assert [get(proxy) for _ in range(10)] == [200] * 10
    assert served(a) == 3  # nothing reached it while it was out

    broken.status = 200  # fixed meanwhile: it returns after the window and serves again
    returned = when(outlier_log, f"target {a.address} of upstream app: its 300ms ejection")
    assert returned is not None
    assert 0.28 <= returned - ejected < 0.6
    assert wait_until(lambda: get(proxy) == 200 and served(a) > 3)
    print(  # the figures in docs/resilience.md
        f"outlier (consecutive_failures 3, base_ejection 300ms): 16 requests sent, "
        f"{statuses.count(500)} failed, ejected at the 3rd failure; back "
        f"{(returned - ejected) * 1000:.0f} ms after the ejection"
    )


def test_a_target_failing_again_is_ejected_for_longer(backend, bascule, outlier_log):
    a, b = backend(Service("broken", 503).respond), backend(Service("fine").respond)
    proxy = bascule(config(a, b, upstream={"outlier_detection": outlier(base_ejection="100ms")}))
    while when(outlier_log, "(ejection 2 in a row)", timeout=0) is None:
        get(proxy)
        time.sleep(0.01)
        assert served(a) < 20, "not ejected a second time"
    assert f"target {a.address} of upstream app ejected for 200ms" in outlier_log.text


def test_connect_failures_eject_a_refused_target(backend, bascule, outlier_log):
    dead = refused_port()
    alive = backend(Service("alive").respond)
    proxy = bascule(config(dead, alive, upstream={"outlier_detection": outlier()}))
    for _ in range(8):
        get(proxy)
    assert f"target 127.0.0.1:{dead} of upstream app ejected for 300ms" in outlier_log.text


def test_max_ejected_percent_keeps_half_the_targets_in(backend, bascule, outlier_log):
    first, second = backend(Service("one", 500).respond), backend(Service("two", 500).respond)
    proxy = bascule(
        config(
            first,
            second,
            upstream={"outlier_detection": outlier(base_ejection="5s", max_ejection="5s")},
        )
    )
    for _ in range(12):
        get(proxy)
    assert outlier_log.text.count("ejected for 5s") == 1
    assert "but stays in: 1 of 2 targets are ejected already" in outlier_log.text
    kept = second if served(first) == 3 else first
    assert served(kept) == 12 - 3  # every request after the first ejection went to it


def test_with_health_checks_an_ejected_target_returns_only_after_passing_them(
    backend, bascule, outlier_log
):
    broken, fine = Service("broken", 500), Service("fine")
    a, b = backend(broken.respond), backend(fine.respond)
    upstream = {
        "outlier_detection": outlier(),
        "health": {"http": {}, "interval": "100ms", "jitter": "0%", "healthy": 2},
    }
    proxy = bascule(config(a, b, upstream=upstream))
    for _ in range(6):
        get(proxy)
    ejected = when(outlier_log, f"{a.address} of upstream app ejected")
    over = when(outlier_log, "ejection is over; it returns once its health checks pass")
    up = when(outlier_log, f"target {a.address} of upstream app is up: GET /healthz → 200 (2 ")
    assert ejected is not None
    assert over is not None
    assert up is not None
    # the window, then two passing checks: the first at once, the second an interval later
    assert 0.28 <= over - ejected < 0.6
    assert 0.08 <= up - over < 0.4
    print(
        f"outlier + health (interval 100ms, healthy 2): window over "
        f"{(over - ejected) * 1000:.0f} ms after the ejection, back in service "
        f"{(up - over) * 1000:.0f} ms later"
    )
