"""The shared cache store against a real redis-server: two Bascule instances sharing it, a
body in several chunks, the keys' lifetimes, and Redis dying under a steady load."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from e2e.cache_support import Origin, cache_status, get
from e2e.proxy import config, wait_until
from e2e.redis_server import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    running = RedisServer(tmp_path)
    yield running
    running.stop()


def shared(origin: Origin, backend: Any, bascule: Any, port: int, prefix: str = "bascule:") -> Any:
    store = {"url": f"redis://127.0.0.1:{port}/0", "prefix": prefix}
    return bascule(
        config(backend(origin.respond), route={"cache": {"store": "redis", "redis": store}})
    )


def test_a_miss_on_one_node_is_a_hit_on_the_other(backend, bascule, server):
    origin = Origin(("Cache-Control", "max-age=60"), ("Vary", "Accept-Language"))
    one = shared(origin, backend, bascule, server.port)
    two = shared(origin, backend, bascule, server.port)
    first = get(one.port, "/page", "Accept-Language: en")
    assert cache_status(first) == "bascule; fwd=uri-miss; stored"
    assert len(origin.seen) == 1

    client = redis.Redis(port=server.port)
    assert wait_until(lambda: client.keys("bascule:k:*") != [])  # written in the background
    client.close()
    answer = get(two.port, "/page", "Accept-Language: en")
    assert cache_status(answer).startswith("bascule; hit")
    assert len(origin.seen) == 1
    assert cache_status(get(two.port, "/page", "Accept-Language: fr")).startswith(
        "bascule; fwd=vary-miss"
    )


def test_a_large_body_is_stored_in_chunks_and_read_back_whole(backend, bascule, server):
    body = bytes(range(256)) * 4000  # 1,024,000 bytes: four chunks
    origin = Origin(("Cache-Control", "max-age=60"), body=body)
    proxy = shared(origin, backend, bascule, server.port)
    assert get(proxy.port).body == body
    assert wait_until(lambda: cache_status(get(proxy.port)).startswith("bascule; hit"))
    hit = get(proxy.port)
    assert hit.body == body
    client = redis.Redis(port=server.port)
    assert len(client.keys("bascule:b:*")) == 4
    client.close()


def test_keys_expire_with_their_entries(backend, bascule, server):
    origin = Origin(("Cache-Control", "max-age=60"))
    proxy = shared(origin, backend, bascule, server.port, prefix="shop:")
    get(proxy.port)
    client = redis.Redis(port=server.port)
    assert wait_until(lambda: client.keys("shop:k:*") != [])
    (meta,) = client.keys("shop:k:*")
    assert meta == b"shop:k:http://shop.test/page"
    assert 55 <= client.ttl(meta) <= 60  # max-age, no validator: no grace
    assert client.keys("shop:b:*") == []  # a small body lives in the variant's record
    client.close()


def test_redis_dying_never_fails_a_request(backend, bascule, server, caplog):
    caplog.set_level(logging.WARNING, logger="bascule.cache")
    origin = Origin(("Cache-Control", "max-age=60"))
    proxy = shared(origin, backend, bascule, server.port)
    get(proxy.port)
    assert wait_until(lambda: cache_status(get(proxy.port)).startswith("bascule; hit"))
    server.stop()
    answers = [get(proxy.port, f"/page{n}") for n in range(30)]
    assert all((a.status, a.body) == (200, b"version 1") for a in answers)
    warnings = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited
    assert "the cache is bypassed until it answers" in warnings[0]
