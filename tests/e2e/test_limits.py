"""max_conns per target with a queue in front (circuit breaking), and backup targets."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from e2e.backends import Request, fixed, named, refused_port
from e2e.proxy import config


class Gauge:
    """How many requests a backend works on at once, and the most it ever did."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0


def counted(gauge: Gauge, delay: float):
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        gauge.now += 1
        gauge.most = max(gauge.most, gauge.now)
        await asyncio.sleep(delay)
        gauge.now -= 1
        return await fixed(body=b"done")(request, writer)

    return respond


def together(url: str, count: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: httpx.get(url, timeout=10), range(count)))


def test_requests_over_max_conns_wait_their_turn(backend, bascule):
    gauge = Gauge()
    proxy = bascule(config(backend(counted(gauge, 0.1)), upstream={"max_conns": 1}))
    started = time.monotonic()
    responses = together(proxy.url(), 4)
    assert [r.status_code for r in responses] == [200] * 4
    assert gauge.most == 1  # never more than one at once on the target
    assert time.monotonic() - started >= 0.4  # one after the other


def test_a_full_queue_answers_503_at_once_with_retry_after(backend, bascule):
    gauge = Gauge()
    upstream = {"max_conns": 1, "max_pending": 1}
    proxy = bascule(config(backend(counted(gauge, 0.5)), upstream=upstream))
    responses = together(proxy.url(), 3)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 503]
    (refused,) = [r for r in responses if r.status_code == 503]
    assert refused.headers["retry-after"] == "1"
    assert b"queue is full" in refused.content
    assert refused.elapsed.total_seconds() < 0.4  # at once, not after the others


def test_a_request_waits_no_longer_than_queue_timeout(backend, bascule):
    gauge = Gauge()
    upstream = {"max_conns": 1, "queue_timeout": "200ms"}
    proxy = bascule(config(backend(counted(gauge, 1.0)), upstream=upstream))
    responses = together(proxy.url(), 2)
    (late,) = [r for r in responses if r.status_code == 503]
    assert b"no target was free within 0.2s" in late.content
    assert 0.15 < late.elapsed.total_seconds() < 0.8


def test_a_saturated_target_sends_the_excess_to_the_others(backend, bascule):
    small, big = Gauge(), Gauge()
    targets = [
        {"address": backend(counted(small, 0.2)).address, "max_conns": 1},
        {"address": backend(counted(big, 0.2)).address},
    ]
    proxy = bascule(config(upstreams={"app": {"targets": targets}}))
    assert [r.status_code for r in together(proxy.url(), 6)] == [200] * 6
    assert small.most == 1
    assert big.most >= 2


def test_backup_targets_serve_only_when_the_primaries_cannot(backend, bascule):
    primary, spare = backend(named("primary")), backend(named("backup"))
    targets = [{"address": primary.address}, {"address": spare.address, "backup": True}]
    proxy = bascule(config(upstreams={"app": {"targets": targets}}))
    with httpx.Client(base_url=proxy.url()) as client:
        assert {client.get("/").content for _ in range(6)} == {b"primary"}
    dead = [{"address": f"127.0.0.1:{refused_port()}"}, {"address": spare.address, "backup": True}]
    proxy = bascule(config(upstreams={"app": {"targets": dead}}))
    with httpx.Client(base_url=proxy.url()) as client:
        assert {client.get("/").content for _ in range(6)} == {b"backup"}


def test_a_place_freed_by_a_finished_request_is_free_for_the_next(backend, bascule):
    gauge = Gauge()
    upstream = {"max_conns": 1, "queue_timeout": "200ms"}
    proxy = bascule(config(backend(counted(gauge, 0.0)), upstream=upstream))
    with httpx.Client(base_url=proxy.url()) as client:
        statuses = [client.get("/").status_code for _ in range(5)]
    assert statuses == [200] * 5  # one after the other: none waits, none is refused
