"""The cache end to end: a real origin that sends the headers under test, raw client bytes,
and the origin's own count of what reached it."""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

from e2e.cache_support import Origin, cache_status, get
from e2e.proxy import config, wait_until


def caching(origin: Origin, backend: Any, bascule: Any, **cache: Any) -> Any:
    return bascule(config(backend(origin.respond), route={"cache": cache}))


def test_a_fresh_response_is_stored_then_answers_with_its_age(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), ("Content-Type", "text/plain"))
    proxy = caching(origin, backend, bascule)
    first, second = get(proxy.port), get(proxy.port)
    assert cache_status(first) == "bascule; fwd=uri-miss; stored"
    assert (second.status, second.body) == (200, b"version 1")
    assert cache_status(second).startswith("bascule; hit; ttl=")
    assert second.header("age") == "0"
    assert second.header("content-length") == "9"
    assert len(origin.seen) == 1
    head = get(proxy.port, method="HEAD")
    assert (head.status, head.header("content-length")) == (200, "9")
    assert len(origin.seen) == 1  # HEAD answered from the GET


def test_the_key_holds_host_path_and_query(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"))
    proxy = caching(origin, backend, bascule)
    for path in ("/page", "/page?x=1", "/page?x=2", "/page?x=1", "/other"):
        get(proxy.port, path)
    assert len(origin.seen) == 4


def test_what_must_not_be_stored_never_is(backend, bascule):
    for headers, request_lines in (
        ([("Cache-Control", "no-store")], []),
        ([("Cache-Control", "private, max-age=60")], []),
        ([("Cache-Control", "max-age=60"), ("Set-Cookie", "id=1")], []),
        ([("Cache-Control", "max-age=60"), ("Vary", "*")], []),
        ([("Cache-Control", "max-age=60")], ["Authorization: Bearer x"]),
        ([("Cache-Control", "max-age=60")], ["Cache-Control: no-store"]),
        ([], []),  # no freshness and no validator
    ):
        origin = Origin(*headers)
        proxy = caching(origin, backend, bascule)
        get(proxy.port, "/page", *request_lines)
        get(proxy.port, "/page", *request_lines)
        assert len(origin.seen) == 2, headers


def test_authorization_with_s_maxage_is_shared(backend, bascule):
    origin = Origin(("Cache-Control", "s-maxage=60"))
    proxy = caching(origin, backend, bascule)
    get(proxy.port, "/page", "Authorization: Bearer x")
    assert cache_status(get(proxy.port, "/page", "Authorization: Bearer y")).startswith(
        "bascule; hit"
    )


def test_vary_keeps_one_variant_per_request_header_value(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), ("Vary", "Accept-Language"))
    proxy = caching(origin, backend, bascule)
    get(proxy.port, "/page", "Accept-Language: en")
    miss = get(proxy.port, "/page", "Accept-Language: fr")
    assert cache_status(miss) == "bascule; fwd=vary-miss; stored"
    assert cache_status(get(proxy.port, "/page", "Accept-Language: en")).startswith("bascule; hit")
    assert cache_status(get(proxy.port, "/page", "Accept-Language: fr")).startswith("bascule; hit")
    assert len(origin.seen) == 2


def test_a_stale_response_is_revalidated_and_a_304_refreshes_it(backend, bascule):
    # Age 100 over max-age 60: stale as soon as it is stored
    origin = Origin(("Cache-Control", "max-age=60"), ("ETag", '"v1"'), ("Age", "100"))
    proxy = caching(origin, backend, bascule)
    get(proxy.port)
    origin.headers = [("Cache-Control", "max-age=60"), ("ETag", '"v1"'), ("X-Refreshed", "yes")]
    validated = get(proxy.port)
    assert origin.seen[-1].header("if-none-match") == '"v1"'
    assert (validated.status, validated.body) == (200, b"version 1")
    assert cache_status(validated) == "bascule; fwd=stale; fwd-status=304"
    assert validated.header("x-refreshed") == "yes"
    hit = get(proxy.port)
    assert cache_status(hit).startswith("bascule; hit")
    assert len(origin.seen) == 2


def test_a_changed_resource_replaces_the_stale_entry(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), ("ETag", '"v1"'), ("Age", "100"))
    proxy = caching(origin, backend, bascule)
    get(proxy.port)
    origin.headers = [("Cache-Control", "max-age=60"), ("ETag", '"v2"')]
    origin.body = b"version 2"
    changed = get(proxy.port)
    assert (changed.body, cache_status(changed)) == (
        b"version 2",
        "bascule; fwd=stale; fwd-status=200; stored",
    )
    assert get(proxy.port).body == b"version 2"
    assert len(origin.seen) == 2


def test_request_directives(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), ("ETag", '"v1"'))
    proxy = caching(origin, backend, bascule)
    get(proxy.port)
    forced = get(proxy.port, "/page", "Cache-Control: no-cache")
    assert cache_status(forced) == "bascule; fwd=request; fwd-status=304"
    assert len(origin.seen) == 2
    assert cache_status(get(proxy.port, "/page", "Pragma: no-cache")).startswith(
        "bascule; fwd=request"
    )
    assert cache_status(get(proxy.port, "/page", "Cache-Control: min-fresh=3600")).startswith(
        "bascule; fwd=request"
    )
    unavailable = get(proxy.port, "/cold", "Cache-Control: only-if-cached")
    assert unavailable.status == 504
    assert cache_status(unavailable) == "bascule; fwd=uri-miss"


def test_max_stale_serves_stale_unless_the_response_must_revalidate(backend, bascule):
    for directive, served_stale in (("max-age=60", True), ("max-age=60, must-revalidate", False)):
        origin = Origin(("Cache-Control", directive), ("Age", "100"))
        proxy = caching(origin, backend, bascule)
        get(proxy.port)
        answer = get(proxy.port, "/page", "Cache-Control: max-stale=3600")
        assert cache_status(answer).startswith("bascule; hit") is served_stale
        assert len(origin.seen) == (1 if served_stale else 2)


def test_a_client_validator_that_matches_gets_304_from_the_cache(backend, bascule):
    origin = Origin(
        ("Cache-Control", "max-age=60"),
        ("ETag", 'W/"v1"'),
        ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
    )
    proxy = caching(origin, backend, bascule)
    first = get(proxy.port, "/page", 'If-None-Match: "v0"')  # a miss sends no validator up
    assert first.status == 200
    assert origin.seen[0].header("if-none-match") is None
    assert get(proxy.port, "/page", 'If-None-Match: "v0", "v1"').status == 304
    assert get(proxy.port, "/page", 'If-None-Match: "v0"').status == 200
    assert (
        get(proxy.port, "/page", "If-Modified-Since: Mon, 07 Nov 1994 08:49:37 GMT").status == 304
    )
    assert (
        get(proxy.port, "/page", "If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT").status == 200
    )
    assert len(origin.seen) == 1


def test_an_unsafe_method_invalidates_its_uri_and_its_location(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), ("Location", "/other"))
    proxy = caching(origin, backend, bascule)
    get(proxy.port, "/page")
    get(proxy.port, "/other")
    posted = get(proxy.port, "/page", "Content-Length: 0", method="POST")
    assert posted.status == 200
    assert cache_status(get(proxy.port, "/page")).startswith("bascule; fwd=uri-miss")
    assert cache_status(get(proxy.port, "/other")).startswith("bascule; fwd=uri-miss")


def test_a_response_over_max_object_streams_through_unstored(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), body=b"x" * 5000)
    proxy = caching(origin, backend, bascule, max_object="4KiB")
    assert get(proxy.port).body == b"x" * 5000
    assert get(proxy.port).body == b"x" * 5000
    assert len(origin.seen) == 2


def test_concurrent_misses_reach_the_origin_once(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"))
    origin.delay = 0.3
    proxy = caching(origin, backend, bascule)

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /cold HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    async def hundred() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(100)))

    answers = asyncio.run(hundred())
    assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b"version 1") for a in answers)
    assert len(origin.seen) == 1


def test_one_entry_serves_every_encoding(backend, bascule):
    page = b"<p>cached and compressed</p>" * 200
    origin = Origin(("Cache-Control", "max-age=60"), ("Content-Type", "text/html"), body=page)
    proxy = bascule(config(backend(origin.respond), route={"cache": {}, "compress": {}}))
    plain = get(proxy.port)
    assert plain.body == page
    gzipped = get(proxy.port, "/page", "Accept-Encoding: gzip")
    assert gzipped.header("content-encoding") == "gzip"
    assert cache_status(gzipped).startswith("bascule; hit")
    assert zlib.decompress(gzipped.body, 31) == page
    assert get(proxy.port).body == page
    assert len(origin.seen) == 1


# Age 100 over max-age 60: stale as soon as it is stored, and within the windows below
STALE = (("Age", "100"), ("ETag", '"v1"'))


def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60, stale-while-revalidate=600"), *STALE)
    proxy = caching(origin, backend, bascule)
    get(proxy.port)
    origin.delay = 0.5  # the background revalidation is slow; the client must not wait
    origin.headers = [("Cache-Control", "max-age=60"), ("ETag", '"v1"'), ("X-Refreshed", "yes")]
    started = time.monotonic()
    stale = get(proxy.port)
    assert time.monotonic() - started < 0.4
    assert (stale.status, stale.body) == (200, b"version 1")
    assert "detail=stale-while-revalidate" in cache_status(stale)
    assert wait_until(lambda: len(origin.seen) == 2)
    assert origin.seen[1].header("if-none-match") == '"v1"'
    assert wait_until(lambda: get(proxy.port).header("x-refreshed") == "yes")
    assert len(origin.seen) == 2  # one background request, and hits after it


def test_stale_if_error_answers_when_the_origin_fails(backend, backend_loop, bascule):
    origin = Origin(("Cache-Control", "max-age=60, stale-if-error=600"), *STALE)
    target = backend(origin.respond)
    proxy = bascule(config(target, route={"cache": {}}))
    get(proxy.port)
    origin.status = 503
    answer = get(proxy.port)
    assert (answer.status, answer.body) == (200, b"version 1")
    assert cache_status(answer) == "bascule; fwd=stale; fwd-status=503; detail=stale-if-error"
    backend_loop.stop(target)  # now it refuses connections
    refused = get(proxy.port)
    assert (refused.status, refused.body) == (200, b"version 1")
    assert cache_status(refused) == "bascule; fwd=stale; detail=stale-if-error"


def test_stale_if_error_asked_by_the_request_and_refused_by_must_revalidate(backend, bascule):
    origin = Origin(("Cache-Control", "max-age=60"), *STALE)
    proxy = caching(origin, backend, bascule)
    get(proxy.port)
    origin.status = 503
    assert get(proxy.port).status == 503
    assert get(proxy.port, "/page", "Cache-Control: stale-if-error=600").status == 200
    strict = Origin(("Cache-Control", "max-age=60, stale-if-error=600, must-revalidate"), *STALE)
    proxy = caching(strict, backend, bascule)
    get(proxy.port)
    strict.status = 503
    assert get(proxy.port).status == 503
