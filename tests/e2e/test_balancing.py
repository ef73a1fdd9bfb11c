"""Balancing across targets, and failover past a target that refuses."""

from __future__ import annotations

from e2e.backends import fixed, refused_port
from e2e.proxy import config, weights
from e2e.wire import Wire


def fetch(proxy, count: int) -> list[bytes]:
    with Wire(proxy.port) as wire:
        return [wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").body for _ in range(count)]


def test_weighted_round_robin_3_to_1(backend, bascule):
    heavy, light = backend(fixed(body=b"heavy")), backend(fixed(body=b"light"))
    upstreams = {"app": {"targets": weights((heavy, 3), (light, 1))}}
    proxy = bascule(config(upstreams=upstreams))
    bodies = fetch(proxy, 40)
    assert (bodies.count(b"heavy"), bodies.count(b"light")) == (30, 10)


def test_refused_target_is_skipped_for_the_next(backend, bascule):
    dead = refused_port()
    alive = backend(fixed(body=b"alive"))
    proxy = bascule(config(dead, alive))
    assert fetch(proxy, 4) == [b"alive"] * 4
    assert len(alive.requests) == 4


def test_all_targets_refusing_is_502_naming_the_target(bascule):
    first, second = refused_port(), refused_port()
    proxy = bascule(config(first, second))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert response.status == 502
    assert b"127.0.0.1:%d" % first in response.body or b"127.0.0.1:%d" % second in response.body
    assert proxy.last_log()["error_source"] == "upstream"
