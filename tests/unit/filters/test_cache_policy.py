"""RFC 9111 as pure functions: Cache-Control parsing, what a shared cache may store, how
long a response stays fresh and how old it is; and the memory store's bounds."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import pytest

from bascule.filters.cache_policy import (
    CacheControl,
    Freshness,
    http_date,
    parse_cache_control,
    storable,
)
from bascule.filters.cache_store import ENTRY_OVERHEAD, Entry, MemoryStore

NOW = 1_800_000_000.0


def cc(value: str) -> CacheControl:
    return parse_cache_control(value.encode())


def test_directives_are_parsed_case_insensitively_with_their_arguments() -> None:
    parsed = cc('Public, MAX-AGE=60, s-maxage="120", no-cache="Set-Cookie", private')
    assert parsed.seconds("max-age") == 60
    assert parsed.seconds("s-maxage") == 120
    assert parsed.has("public")
    assert parsed.has("private")
    assert parsed.seconds("stale-if-error") is None


def test_an_invalid_delta_reads_as_zero_and_the_first_directive_counts() -> None:
    assert cc("max-age=soon").seconds("max-age") == 0
    assert cc("max-age=-5").seconds("max-age") == 0
    assert cc("max-age=10, max-age=100").seconds("max-age") == 10


def store_ok(status: int = 200, response: str = "max-age=60", **kwargs: object) -> bool:
    options: dict[str, object] = {
        "request": cc(""),
        "authorized": False,
        "has_expires": False,
        "has_validator": False,
    }
    options.update(kwargs)
    return storable(status, cc(response), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "response", "kwargs", "expected"),
    [
        (200, "max-age=60", {}, True),
        (200, "no-store, max-age=60", {}, False),
        (200, "private, max-age=60", {}, False),
        (200, "max-age=60", {"request": cc("no-store")}, False),
        (200, "max-age=60", {"authorized": True}, False),
        (200, "s-maxage=60", {"authorized": True}, True),
        (200, "public", {"authorized": True}, True),
        (200, "must-revalidate, max-age=60", {"authorized": True}, True),
        (200, "", {}, False),  # nothing to be fresh for, nothing to revalidate with
        (200, "", {"has_validator": True}, True),
        (404, "", {"has_validator": True}, True),
        (302, "", {"has_validator": True}, False),  # not heuristically cacheable
        (302, "max-age=60", {}, True),
        (200, "", {"has_expires": True}, True),
        (206, "max-age=60", {}, False),
        (299, "max-age=60", {}, False),  # a status it does not understand
    ],
)
def test_what_a_shared_cache_may_store(
    status: int, response: str, kwargs: dict[str, object], expected: bool
) -> None:
    assert store_ok(status, response, **kwargs) is expected


def fresh(response: str, **fields: object) -> Freshness:
    options: dict[str, object] = {
        "date": NOW,
        "expires": None,
        "last_modified": None,
        "age": None,
        "request_time": NOW,
        "response_time": NOW,
    }
    options.update(fields)
    return Freshness.of(status=200, response=cc(response), **options)  # type: ignore[arg-type]


def test_lifetime_prefers_s_maxage_then_max_age_then_expires_then_heuristic() -> None:
    expires = formatdate(NOW + 300, usegmt=True).encode()
    assert fresh("s-maxage=10, max-age=20", expires=expires).lifetime == 10
    assert fresh("max-age=20", expires=expires).lifetime == 20
    assert fresh("", expires=expires).lifetime == 300
    assert fresh("", expires=b"not a date").lifetime == 0  # invalid: already expired
    assert fresh("", last_modified=NOW - 1000).lifetime == pytest.approx(100)  # 10 %
    assert fresh("").lifetime == 0


def test_age_counts_the_age_header_transit_and_residence() -> None:
    f = fresh("max-age=100", age=b"30", request_time=NOW - 2)
    assert f.current_age(NOW) == pytest.approx(32)  # 30 + 2 s in transit
    assert f.current_age(NOW + 10) == pytest.approx(42)
    assert f.ttl(NOW + 10) == pytest.approx(58)
    late_date = fresh("max-age=100", date=NOW - 50)
    assert late_date.current_age(NOW) == pytest.approx(50)  # apparent age from Date


def test_http_dates_parse_and_garbage_is_none() -> None:
    assert http_date(b"Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert http_date(b"yesterday") is None
    assert http_date(None) is None


def entry(body: bytes, vary: tuple[tuple[bytes, bytes | None], ...] = ()) -> Entry:
    return Entry(200, b" 200 OK", b"\r\nX: y", body, fresh("max-age=60"), vary=vary)


def test_the_memory_store_evicts_the_least_recently_used_within_its_bytes() -> None:
    size = 3 * (100 + len(b"\r\nX: y") + ENTRY_OVERHEAD + 1)
    store = MemoryStore(size)
    for key in "abc":
        store.put(key, entry(b"x" * 100))
    store.get("a")  # a is used: b is now the oldest
    store.put("d", entry(b"x" * 100))
    assert [k for k in "abcd" if store.get(k)] == ["a", "c", "d"]
    assert store.size <= size


def test_variants_share_a_key_and_a_same_vary_replaces() -> None:
    store = MemoryStore(1 << 20)
    english = ((b"accept-language", b"en"),)
    store.put("k", entry(b"en", english))
    store.put("k", entry(b"fr", ((b"accept-language", b"fr"),)))
    store.put("k", entry(b"en again", english))
    assert sorted(e.body for e in store.get("k")) == [b"en again", b"fr"]
    assert len(store) == 2
    assert asyncio.run(store.purge("k")) == 1
    assert store.size == 0


def test_an_entry_larger_than_the_store_is_not_kept() -> None:
    store = MemoryStore(1000)
    store.put("big", entry(b"x" * 2000))
    assert store.get("big") == []
    assert store.size == 0


def test_an_entry_survives_its_record_and_garbage_is_refused() -> None:
    original = Entry(
        200,
        b" 200 OK",
        b'\r\nETag: "x"\r\nX-\xe9: y',
        b"body",
        fresh("max-age=60", age=b"3"),
        vary=((b"accept-language", b"en"), (b"cookie", None)),
        etag=b'"x"',
        stale_while_revalidate=30,
    )
    copy = Entry.from_record(original.record(), b"body")
    assert copy == original
    with pytest.raises(ValueError, match="not a stored response"):
        Entry.from_record(b'{"status": 200}', b"")
