"""Retries end to end: what is retried, where to, with which body, and within the budget."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from e2e.backends import Request, echo, fixed, named, silent
from e2e.proxy import config

RETRY_ALL = {"attempts": 3, "on": ["connect_failure", "timeout", "reset", 502, 503, 504]}


def failing(status: int):
    """Answers `status`, counting itself in the access log of the test by its body."""
    return fixed(status=status, body=b"failed %d" % status)


def load(url: str, requests: int, during=None, at: int = 0, workers: int = 8) -> list[int]:
    """`requests` GETs from `workers` threads, each with its keep-alive client; `during()`
    runs once `at` of them are done."""
    done = 0
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(_: int) -> int:
        nonlocal done
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=10)
            with lock:
                clients.append(local.client)
        try:
            status = local.client.get(url).status_code
        except httpx.HTTPError:
            status = 0  # the connection was closed on us
        with lock:
            done += 1
            if done == at and during is not None:
                during()
        return status

    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(requests)))
    finally:
        for client in clients:
            client.close()


def test_a_target_killed_under_load_costs_nothing_with_retries(backend, backend_loop, bascule):
    a, b, c = (backend(named(n, 0.005)) for n in "abc")
    proxy = bascule(config(a, b, c, upstream={"retries": RETRY_ALL}))
    statuses = load(proxy.url(), 300, during=lambda: backend_loop.stop(b), at=100)
    assert statuses == [200] * 300
    assert b.requests  # it did serve before it died


def test_without_retries_only_requests_in_flight_on_the_killed_target_fail(
    backend, backend_loop, bascule
):
    a, b, c = (backend(named(n, 0.02)) for n in "abc")
    proxy = bascule(config(a, b, c))  # default: only connect failures go to another target
    statuses = load(proxy.url(), 300, during=lambda: backend_loop.stop(b), at=100, workers=6)
    failed = [s for s in statuses if s != 200]
    # at most one per worker, those in flight on b (a reused connection that is reset
    # before any response byte is sent once more, so even those often get through)
    assert len(failed) <= 6, failed
    assert set(failed) <= {502, 0}


def test_a_retried_status_goes_to_another_target_and_the_client_never_sees_it(backend, bascule):
    broken, good = backend(failing(503)), backend(named("good"))
    proxy = bascule(config(broken, good, upstream={"retries": RETRY_ALL}))
    with httpx.Client(base_url=proxy.url()) as client:
        responses = [client.get("/") for _ in range(6)]
    assert [(r.status_code, r.content) for r in responses] == [(200, b"good")] * 6
    assert broken.requests  # it was tried, and its answers never reached the client


def test_a_status_not_listed_passes_through(backend, bascule):
    broken, good = backend(failing(500)), backend(named("good"))
    proxy = bascule(config(broken, good, upstream={"retries": RETRY_ALL}))
    with httpx.Client(base_url=proxy.url()) as client:
        statuses = sorted(client.get("/").status_code for _ in range(4))
    assert statuses == [200, 200, 500, 500]


def test_when_every_target_fails_the_last_answer_goes_to_the_client(backend, bascule):
    targets = [backend(failing(503)) for _ in range(3)]
    proxy = bascule(config(*targets, upstream={"retries": RETRY_ALL}))
    response = httpx.get(proxy.url())
    assert (response.status_code, response.content) == (503, b"failed 503")
    assert sum(len(t.requests) for t in targets) == 3  # one try on each, then no more


def test_post_is_not_retried_unless_its_method_is_listed(backend, bascule):
    broken, good = backend(failing(503)), backend(echo)
    retries = {**RETRY_ALL, "attempts": 2}
    proxy = bascule(config(broken, good, upstream={"retries": retries}))
    with httpx.Client(base_url=proxy.url()) as client:
        statuses = sorted(client.post("/", content=b"order #1").status_code for _ in range(4))
    assert statuses == [200, 200, 503, 503]


def test_a_kept_body_is_sent_again_whole(backend, bascule):
    broken, good = backend(failing(503)), backend(echo)
    retries = {**RETRY_ALL, "methods": ["POST"]}
    proxy = bascule(config(broken, good, upstream={"retries": retries}))
    body = b"x" * 5000
    with httpx.Client(base_url=proxy.url()) as client:
        plain = [client.post("/", content=body) for _ in range(2)]
        chunked = [client.post("/", content=iter([body[:2000], body[2000:]])) for _ in range(2)]
    for response in plain + chunked:
        assert response.status_code == 200
        assert response.json()["body_length"] == 5000
    assert all(len(r.body) == 5000 for r in broken.requests)  # the first tries, in full


def test_a_body_over_the_replay_buffer_is_not_retried(backend, bascule):
    broken, good = backend(failing(503)), backend(echo)
    retries = {**RETRY_ALL, "methods": ["POST"], "replay_buffer": "1KiB"}
    proxy = bascule(config(broken, good, upstream={"retries": retries}))
    with httpx.Client(base_url=proxy.url()) as client:
        statuses = sorted(client.post("/", content=b"y" * 5000).status_code for _ in range(2))
    assert statuses == [200, 503]


def test_per_try_timeout_moves_on_from_a_target_that_never_answers(backend, bascule):
    hung, good = backend(silent, raw=True), backend(named("good"))
    retries = {**RETRY_ALL, "per_try_timeout": "200ms"}
    proxy = bascule(config(hung, good, upstream={"retries": retries}))
    started = time.monotonic()
    with httpx.Client(base_url=proxy.url(), timeout=5) as client:
        responses = [client.get("/") for _ in range(4)]
    assert [r.content for r in responses] == [b"good"] * 4
    assert time.monotonic() - started < 2.0  # two waits of 200 ms, not the 60 s read timeout


def test_the_total_timeout_ends_a_try_that_drags_on(backend, bascule):
    async def dribble(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)  # never idle for long: only `total` can stop it
        return True

    proxy = bascule(config(backend(dribble), upstream={"timeouts": {"total": "300ms"}}))
    started = time.monotonic()
    try:
        httpx.get(proxy.url(), timeout=5)
    except httpx.RemoteProtocolError:
        pass  # the body was cut short: the connection closes, never a complete-looking body
    else:
        raise AssertionError("a response cut by the total timeout looked complete")
    assert time.monotonic() - started < 2.0
    assert proxy.last_log()["error"].endswith("took longer than 0.3s")


def test_the_budget_caps_retries_when_everything_fails(backend, bascule):
    targets = [backend(failing(503)) for _ in range(3)]
    retries = {**RETRY_ALL, "budget": "10%"}
    proxy = bascule(config(*targets, upstream={"retries": retries}))
    statuses = load(proxy.url(), 300, workers=4)
    attempts = sum(len(t.requests) for t in targets)
    assert statuses == [503] * 300
    # each request could have tried all three targets (900); the budget allows 10% of the
    # requests plus the floor of 3 per second over the 10-second window
    assert attempts <= 300 + 30 + 30, attempts
    assert attempts > 300  # the floor still lets a few retries through
