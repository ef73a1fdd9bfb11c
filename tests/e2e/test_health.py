"""Active health checks end to end: real targets on loopback that fail their checks, refuse,
hang or report load, and what clients of Bascule see meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from e2e.backends import Backend, Service, checks, health_check, refused_port, served, silent
from e2e.proxy import Proxy, config, fd_count, wait_until
from e2e.wire import Response, Wire

INTERVAL = 0.1


def get(proxy: Proxy, path: str = "/") -> Response:
    with Wire(proxy.port) as wire:
        return wire.request(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())


def health(**overrides: Any) -> dict[str, Any]:
    return health_check(INTERVAL, **overrides)


@pytest.fixture
def health_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bascule.health")
    return caplog


def transitions(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The log lines of targets going up or down, in order."""
    return [m for m in caplog.messages if m.startswith("target ")]


def logged(
    caplog: pytest.LogCaptureFixture, text: str, *, after: float = 0.0, timeout: float = 3.0
) -> float | None:
    """When (time.time()) a health log line containing `text` was first written after
    `after`; None if none is within `timeout`."""

    def find() -> float | None:
        for record in list(caplog.records):
            if (
                record.name == "bascule.health"
                and record.created >= after
                and text in record.getMessage()
            ):
                return record.created
        return None

    wait_until(lambda: find() is not None, timeout)
    return find()


def test_a_target_failing_its_check_gets_no_requests_then_returns(backend, bascule, health_log):
    sick, well = Service("sick"), Service("well")
    a, b = backend(sick.respond), backend(well.respond)
    proxy = bascule(config(a, b, upstream={"health": health()}))
    assert wait_until(lambda: len(checks(a)) >= 2)
    assert {get(proxy).body for _ in range(4)} == {b"sick", b"well"}

    sick.health = 503
    switched = time.time()
    down = logged(health_log, f"target {a.address} of upstream app is down", after=switched)
    assert down is not None
    before = len(served(a))
    assert [get(proxy).body for _ in range(10)] == [b"well"] * 10
    reached = len(served(a)) - before
    assert reached == 0  # no client request reached it

    sick.health = 200
    healed = time.time()
    up = logged(health_log, f"target {a.address} of upstream app is up", after=healed)
    assert up is not None
    assert b"sick" in {get(proxy).body for _ in range(4)}
    messages = [r.getMessage() for r in health_log.records]
    assert f"target {a.address} of upstream app is down: GET /healthz → 503 " in "".join(messages)
    assert any(m.endswith("(2 failed checks in a row)") for m in messages)
    assert any(m.endswith("(2 passing checks in a row)") for m in messages)
    # unhealthy = healthy = 2: the second check after a switch decides (two intervals at most)
    assert down - switched < 3 * INTERVAL + 0.2
    assert up - healed < 3 * INTERVAL + 0.2
    print(  # the figures in docs/resilience.md
        f"health (interval 100ms, unhealthy 2, healthy 2): down {(down - switched) * 1000:.0f} ms "
        f"after its check began failing, up {(up - healed) * 1000:.0f} ms after it passed again; "
        f"{reached} of 10 requests reached it while down"
    )


def test_a_refused_target_is_down_with_connect_refused(backend, bascule, health_log):
    dead = refused_port()
    alive = backend(Service("alive").respond)
    proxy = bascule(config(dead, alive, upstream={"health": health()}))
    assert logged(health_log, "connect refused") is not None
    assert transitions(health_log)[0] == (
        f"target 127.0.0.1:{dead} of upstream app is down: connect refused (first check)"
    )
    assert [get(proxy).body for _ in range(4)] == [b"alive"] * 4


def test_a_hanging_target_is_down_by_timeout(backend, bascule, health_log):
    hanging = backend(silent, raw=True)
    alive = backend(Service("alive").respond)
    proxy = bascule(config(hanging, alive, upstream={"health": health(timeout="200ms")}))
    started = time.time()
    down = logged(
        health_log,
        f"{hanging.address} of upstream app is down: timeout 200ms (no response to "
        "GET /healthz) (first check)",
    )
    assert down is not None
    assert down - started < 1.0
    assert [get(proxy).body for _ in range(4)] == [b"alive"] * 4


def test_all_targets_down_is_503_at_once(backend, bascule, health_log):
    services = [Service("a"), Service("b")]
    for service in services:
        service.health = 500
    targets = [backend(s.respond) for s in services]
    proxy = bascule(config(*targets, upstream={"health": health()}))
    assert wait_until(lambda: health_log.text.count("is down") == 2)
    started = time.monotonic()
    response = get(proxy)
    elapsed = time.monotonic() - started
    assert response.status == 503
    assert b"'app'" in response.body  # the body names the upstream
    assert elapsed < 0.2
    assert all(served(t) == [] for t in targets)
    print(f"all targets down: 503 in {elapsed * 1000:.1f} ms")


def test_a_tcp_check_finds_a_stopped_target(backend, backend_loop, bascule, health_log):
    first, second = backend(Service("first").respond), backend(Service("second").respond)
    proxy = bascule(config(first, second, upstream={"health": {"tcp": {}, "interval": "100ms"}}))
    assert logged(health_log, f"{first.address} of upstream app is up") is not None
    backend_loop.stop(first)
    assert logged(health_log, f"{first.address} of upstream app is down: connect refused")
    assert [get(proxy).body for _ in range(4)] == [b"second"] * 4


def test_initial_down_takes_no_traffic_before_healthy_passes(backend, bascule, health_log):
    only = backend(Service("only").respond)
    proxy = bascule(config(only, upstream={"health": health(initial="down", interval="300ms")}))
    assert get(proxy).status == 503  # one check has passed at most: healthy is 2
    assert logged(health_log, "is up") is not None
    assert get(proxy).body == b"only"


def test_initial_unknown_takes_traffic_before_the_first_result(backend, bascule):
    # The check of a target that never answers takes its whole timeout; meanwhile the
    # target is unknown and takes requests.
    hanging = backend(silent, raw=True)
    proxy = bascule(config(hanging, upstream={"health": health(timeout="2s")}))
    with Wire(proxy.port, timeout=0.5) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert wait_until(lambda: hanging.connections >= 2, 1.0)  # the check, then the request


def test_the_check_request_says_who_it_is_and_closes(backend, bascule, health_log):
    service = Service("s")
    target = backend(service.respond)
    check = health(
        http={
            "method": "HEAD",
            "path": "/healthz?deep=1",
            "host": "app.internal",
            "headers": {"Authorization": "Bearer t"},
        }
    )
    bascule(config(target, upstream={"health": check}))
    assert wait_until(lambda: len(checks(target)) >= 1)
    request = checks(target)[0]
    assert (request.method, request.path, request.version) == (
        "HEAD",
        "/healthz?deep=1",
        "HTTP/1.1",
    )
    assert request.header("host") == "app.internal"
    assert request.header("connection") == "close"
    assert request.header("authorization") == "Bearer t"
    assert request.header("user-agent") == "bascule-health-check"
    assert logged(health_log, "is up: HEAD /healthz?deep=1 → 200")
    assert (
        "upstream app: health checks (HEAD /healthz?deep=1) of 1 target(s) every 100ms, "
        "timeout 1s" in health_log.messages
    )


def test_the_host_header_defaults_to_the_target_address(backend, bascule):
    target = backend(Service("s").respond)
    bascule(config(target, upstream={"health": health()}))
    assert wait_until(lambda: len(checks(target)) >= 1)
    assert checks(target)[0].header("host") == target.address


def test_expect_status_and_body_decide_with_the_reason_logged(backend, bascule, health_log):
    degraded, teapot = Service("degraded"), Service("teapot")
    degraded.health_body = b'{"status": "degraded"}'
    teapot.health, teapot.health_body = 418, b'{"status": "ok"}'
    a, b = backend(degraded.respond), backend(teapot.respond)
    check = health(http={"expect_status": "200,418", "expect_body": '"status": "ok"'})
    bascule(config(a, b, upstream={"health": check}))
    assert wait_until(lambda: len(transitions(health_log)) == 2)
    assert set(transitions(health_log)) == {
        f"target {a.address} of upstream app is down: GET /healthz → 200, body does not "
        'match /"status": "ok"/ (first check)',
        f"target {b.address} of upstream app is up: GET /healthz → 418 (first check)",
    }


def test_a_response_cut_short_or_malformed_fails(backend, bascule, health_log):
    async def cut(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")

    async def garbage(backend: Backend, reader: asyncio.StreamReader, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP ready\r\n\r\n")

    a, b = backend(cut, raw=True), backend(garbage, raw=True)
    bascule(config(a, b, upstream={"health": health()}))
    assert wait_until(lambda: health_log.text.count("is down") == 2)
    text = health_log.text
    assert f"{a.address} of upstream app is down: GET /healthz → 200, body cut short" in text
    assert f"{b.address} of upstream app is down: GET /healthz: malformed response" in text


def test_least_load_takes_load_reports_from_health_checks(backend, bascule):
    busy, idle = Service("busy"), Service("idle")
    busy.health_headers = (("X-Server-Load", "90"),)
    idle.health_body = b'{"load": 10}'
    a, b = backend(busy.respond), backend(idle.respond)
    bascule_config = config(a, b, upstream={"balance": "least_load", "health": health()})
    proxy = bascule(bascule_config)
    assert wait_until(lambda: len(checks(a)) >= 1 and len(checks(b)) >= 1)
    time.sleep(0.05)
    assert [get(proxy).body for _ in range(6)] == [b"idle"] * 6


def test_checks_leave_no_socket_behind(backend, bascule, health_log):
    fds = fd_count()
    hanging = backend(silent, raw=True)
    alive = backend(Service("alive").respond)
    proxy = bascule(
        config(hanging, alive, refused_port(), upstream={"health": health(timeout="50ms")})
    )
    assert wait_until(lambda: len(checks(alive)) >= 5)
    proxy.stop()
    assert wait_until(lambda: fd_count() <= fds + 2)  # the backends' two listening sockets
