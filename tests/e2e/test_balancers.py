"""The balancing algorithms through the real proxy: feedback from real responses reaches
them (response times, reported loads, requests in flight), and the client address they
see is the one trusted proxies vouch for."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from e2e.backends import named
from e2e.proxy import config, wait_until
from e2e.wire import Wire


def test_least_time_sends_less_to_a_target_ten_times_slower(backend, bascule):
    fast, slow = backend(named("fast", 0.005)), backend(named("slow", 0.05))
    proxy = bascule(config(fast, slow, upstream={"balance": "least_time"}))
    with httpx.Client(base_url=proxy.url()) as client:
        served = Counter(client.get("/").content for _ in range(40))
    assert served[b"slow"] <= 4, served  # round robin would give it 20


def test_least_conn_counts_requests_in_flight_and_back_to_zero(backend, bascule):
    one, two = backend(named("one", 0.3)), backend(named("two", 0.3))
    proxy = bascule(config(one, two, upstream={"balance": "least_conn"}))
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(httpx.get, proxy.url())
        assert wait_until(lambda: len(one.requests) + len(two.requests) == 1)
        # one request in flight: the next one goes to the other target
        assert httpx.get(proxy.url()).content != first.result().content
    # a client that leaves mid-request must not leave its target counted as busy
    with Wire(proxy.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert wait_until(lambda: len(one.requests) + len(two.requests) == 3)
    time.sleep(0.4)
    # every count is back to zero: ties rotate between the two
    with httpx.Client(base_url=proxy.url()) as client:
        served = [client.get("/").content for _ in range(4)]
    assert Counter(served) == Counter({b"one": 2, b"two": 2}), served


def test_least_load_reproduces_the_seed_tiers(backend, bascule):
    loads = {"A": 30, "B": 40, "C": 10}
    a, b, c = (backend(named(n, loads=loads)) for n in "ABC")
    upstream = {
        "balance": "least_load",
        "load_max_age": "1s",
        "targets": [
            {"address": a.address, "priority": 0, "max_load": 50},
            {"address": b.address, "priority": 1, "max_load": 75},
            {"address": c.address, "priority": 2},
        ],
    }
    proxy = bascule(config(upstreams={"app": upstream}))

    def served(count: int = 4) -> list[bytes]:
        with httpx.Client(base_url=proxy.url()) as client:
            return [client.get("/").content for _ in range(count)]

    assert served() == [b"A"] * 4  # A while its load is under 50
    loads["A"] = 60
    assert served() == [b"A", b"B", b"B", b"B"]  # A reports 60: B while under 75
    loads["B"] = 80
    assert served() == [b"B", b"C", b"C", b"C"]  # B reports 80: C
    loads["A"] = 20
    time.sleep(1.2)  # the reports age out; A, unknown, counts as the average and gets
    assert served() == [b"A"] * 4  # traffic back, then reports 20 and keeps it


def test_geo_prefers_the_clients_region_by_cidr(backend, bascule):
    eu, us = backend(named("eu")), backend(named("us"))
    upstream = {
        "balance": "geo",
        "targets": [
            {"address": eu.address, "region": "eu-west"},
            {"address": us.address, "region": "us-east"},
        ],
        "geo": {"client_regions": {"us-east": ["127.0.0.0/8"], "eu-west": ["198.51.100.0/24"]}},
    }
    proxy = bascule(config(upstreams={"app": upstream}))
    with httpx.Client(base_url=proxy.url()) as client:
        assert {client.get("/").content for _ in range(10)} == {b"us"}


def test_geo_believes_a_trusted_proxy_and_only_a_trusted_one(backend, bascule):
    eu, us = backend(named("eu")), backend(named("us"))
    upstream = {
        "balance": "geo",
        "targets": [
            {"address": eu.address, "region": "eu-west"},
            {"address": us.address, "region": "us-east"},
        ],
        "geo": {"client_regions": {"us-east": ["127.0.0.0/8"], "eu-west": ["198.51.100.0/24"]}},
    }
    from_eu = {"X-Forwarded-For": "198.51.100.7"}
    trusting = bascule({**config(upstreams={"app": upstream}), "trusted_proxies": ["127.0.0.1"]})
    with httpx.Client(base_url=trusting.url(), headers=from_eu) as client:
        assert {client.get("/").content for _ in range(10)} == {b"eu"}
    untrusting = bascule({**config(upstreams={"app": upstream}), "trusted_proxies": ["10.0.0.0/8"]})
    with httpx.Client(base_url=untrusting.url(), headers=from_eu) as client:
        assert {client.get("/").content for _ in range(10)} == {b"us"}


def test_hash_on_a_header_is_stable_and_spreads(backend, bascule):
    targets = [backend(named(n)) for n in "abcd"]
    proxy = bascule(config(*targets, upstream={"balance": "hash", "key": "$header_x_user"}))
    with httpx.Client(base_url=proxy.url()) as client:
        first = {u: client.get("/", headers={"X-User": f"u{u}"}).content for u in range(40)}
        again = {u: client.get("/", headers={"X-User": f"u{u}"}).content for u in range(40)}
    assert first == again
    assert len(set(first.values())) == 4


def test_ip_hash_keeps_a_client_on_one_target(backend, bascule):
    targets = [backend(named(n)) for n in "abc"]
    proxy = bascule(config(*targets, upstream={"balance": "ip_hash"}))
    with httpx.Client(base_url=proxy.url()) as client:
        assert len({client.get("/").content for _ in range(15)}) == 1
