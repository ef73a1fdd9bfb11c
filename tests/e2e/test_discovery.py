"""DNS discovery end to end: Bascule asks a real DNS server on 127.0.0.1 (tests/e2e/
dns_server.py) whose records each test changes, and traffic follows without a reload.

Two backends on one port use two loopback addresses, 127.0.0.1 and 127.0.0.2, so that an
A record alone can move traffic; SRV records move it between ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bascule.net.event_loop import new_event_loop
from bascule.upstream.discovery import DnsLookup
from e2e.backends import Backend, BackendLoop, Request, Responder, fixed, http
from e2e.dns_server import DnsServer
from e2e.proxy import config, fd_count, wait_until

EVERY = "100ms"


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer()
    yield server
    server.stop()


@pytest.fixture
def second_loopback(backend_loop: BackendLoop) -> Iterator[Callable[[int, Responder], Backend]]:
    """`second_loopback(port, responder)`: a backend on 127.0.0.2 at `port`."""
    started: list[Backend] = []

    def start(port: int, respond: Responder) -> Backend:
        backend = backend_loop.start(http(respond), "127.0.0.2", port)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend_loop.stop(backend)


def body(client: httpx.Client, path: str = "/") -> bytes:
    return client.get(path).content


def bodies(client: httpx.Client, count: int) -> Counter[bytes]:
    return Counter(body(client) for _ in range(count))


def discovery(dns: DnsServer, **extra: Any) -> dict[str, Any]:
    return {"resolvers": [dns.address], **extra}


def time_to_move(client: httpx.Client, to: bytes, timeout: float = 5.0, *, only: int = 1) -> float:
    """Seconds until `only` requests in a row are answered by `to` (asserts it happens)."""
    start = time.monotonic()
    moved = wait_until(lambda: bodies(client, only) == {to: only}, timeout=timeout)
    assert moved, f"never reached {to!r}"
    return time.monotonic() - start


def test_a_hostname_target_follows_its_a_records_without_reload(
    backend, bascule, dns, second_loopback
) -> None:
    one = backend(fixed(body=b"one"))
    two = second_loopback(one.port, fixed(body=b"two"))
    dns.set("app.test", "127.0.0.1")
    proxy = bascule(config(f"app.test:{one.port}", upstream=discovery(dns, resolve_every=EVERY)))

    with httpx.Client(base_url=proxy.url()) as client:
        assert bodies(client, 5) == {b"one": 5}

        dns.set("app.test", "127.0.0.2")
        took = time_to_move(client, b"two")
        assert bodies(client, 5) == {b"two": 5}

        dns.set("app.test", "127.0.0.1", "127.0.0.2")
        time_to_move(client, b"one")
        assert bodies(client, 10) == {b"one": 5, b"two": 5}

    assert two.requests
    print(f"A record change took effect in {took * 1000:.0f} ms (resolve_every {EVERY})")


def test_srv_records_give_ports_weights_and_backups_and_changes_move_traffic(
    backend, backend_loop, bascule, dns
) -> None:
    one, two = backend(fixed(body=b"one")), backend(fixed(body=b"two"))
    dns.set("hosts.app.test", "127.0.0.1")
    srv = "_http._tcp.app.test"
    dns.set_srv(srv, (0, 3, one.port, "hosts.app.test"), (0, 1, two.port, "hosts.app.test"))
    proxy = bascule(config(upstreams={"app": {"targets": [{"srv": srv}], **discovery(dns)}}))

    with httpx.Client(base_url=proxy.url()) as client:
        assert bodies(client, 40) == {b"one": 30, b"two": 10}  # round robin: exact shares

        dns.set_srv(srv, (0, 1, two.port, "hosts.app.test"), (5, 9, one.port, "hosts.app.test"))
        took = time_to_move(client, b"two", only=4)  # `one` is now a stand-by: a backup
        assert bodies(client, 10) == {b"two": 10}

        backend_loop.stop(two)  # refused: the retry finds no primary left, and takes the backup
        assert bodies(client, 5) == {b"one": 5}

    print(f"SRV record change took effect in {took * 1000:.0f} ms (TTL 1 s)")


def test_a_failing_dns_server_keeps_the_last_good_targets_and_logs_once(
    backend, bascule, dns, caplog: pytest.LogCaptureFixture
) -> None:
    one = backend(fixed(body=b"one"))
    dns.set("app.test", "127.0.0.1")
    proxy = bascule(config(f"app.test:{one.port}", upstream=discovery(dns, resolve_every=EVERY)))

    with (
        caplog.at_level(logging.INFO, logger="bascule"),
        httpx.Client(base_url=proxy.url()) as client,
    ):
        assert bodies(client, 3) == {b"one": 3}
        asked = dns.asked("app.test")
        dns.failing = True  # SERVFAIL
        deadline = time.monotonic() + 1.0
        served = Counter[int]()
        while time.monotonic() < deadline:
            served[client.get("/").status_code] += 1
        assert set(served) == {200}
        assert dns.asked("app.test") >= asked + 5  # looked up again every 100 ms
        failures = [r for r in caplog.records if "DNS lookup failed" in r.getMessage()]
        assert len(failures) == 1
        assert "SERVFAIL" in failures[0].getMessage()

        dns.stop()  # no server at all: lookups time out, the targets stay
        assert bodies(client, 20) == {b"one": 20}


def test_a_name_missing_at_startup_answers_503_until_it_resolves(backend, bascule, dns) -> None:
    one = backend(fixed(body=b"one"))
    proxy = bascule(
        config(f"late.app.test:{one.port}", upstream=discovery(dns, resolve_every=EVERY))
    )

    with httpx.Client(base_url=proxy.url()) as client:
        answer = client.get("/")
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "no target" in answer.text

        dns.set("late.app.test", "127.0.0.1")
        time_to_move(client, b"one")


def test_a_request_in_flight_on_a_removed_target_finishes(
    backend, bascule, dns, second_loopback
) -> None:
    async def slow_one(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.path == "/slow":
            await asyncio.sleep(0.6)
        return await fixed(body=b"one")(request, writer)

    one = backend(slow_one)
    second_loopback(one.port, fixed(body=b"two"))
    dns.set("app.test", "127.0.0.1")
    proxy = bascule(config(f"app.test:{one.port}", upstream=discovery(dns, resolve_every=EVERY)))
    slow: list[httpx.Response] = []

    with httpx.Client(base_url=proxy.url()) as client:
        assert bodies(client, 3) == {b"one": 3}  # leaves an idle pooled connection to one
        request = threading.Thread(target=lambda: slow.append(httpx.get(proxy.url("/slow"))))
        request.start()
        assert wait_until(lambda: any(r.path == "/slow" for r in one.requests))

        dns.set("app.test", "127.0.0.2")
        time_to_move(client, b"two")
        request.join(5)

    (response,) = slow
    assert (response.status_code, response.content) == (200, b"one")
    assert wait_until(lambda: not one.writers), "the removed target's connections stay open"


def test_sticky_cookies_follow_discovered_targets(backend, bascule, dns, second_loopback) -> None:
    one = backend(fixed(body=b"one"))
    second_loopback(one.port, fixed(body=b"two"))
    dns.set("app.test", "127.0.0.1")
    sticky = {"sticky": {"cookie": {}}}
    proxy = bascule(
        config(f"app.test:{one.port}", upstream=discovery(dns, resolve_every=EVERY, **sticky))
    )

    with httpx.Client(base_url=proxy.url()) as client:
        first = client.get("/")
        assert first.content == b"one"
        assert "bascule_route" in first.cookies

        dns.set("app.test", "127.0.0.2")
        time_to_move(client, b"two")  # the cookie names a removed target: balanced anew
        moved = client.get("/")
        assert moved.content == b"two"
        assert bodies(client, 5) == {b"two": 5}  # and the new cookie holds


def test_without_resolve_every_a_name_follows_its_ttl(backend, bascule, dns, second_loopback):
    one = backend(fixed(body=b"one"))
    second_loopback(one.port, fixed(body=b"two"))
    dns.set("app.test", "127.0.0.1", ttl=1)
    proxy = bascule(config(f"app.test:{one.port}", upstream=discovery(dns)))

    with httpx.Client(base_url=proxy.url()) as client:
        assert body(client) == b"one"
        asked = dns.asked("app.test")
        dns.set("app.test", "127.0.0.2", ttl=1)
        took = time_to_move(client, b"two", timeout=3.0)

    assert dns.asked("app.test") > asked
    assert took <= 1.5  # TTL 1 s: looked up again within a second of the last lookup
    print(f"A record change with TTL 1 s took effect in {took * 1000:.0f} ms")


@pytest.mark.timeout(10)  # the leak this pins made loop.close() hang
@pytest.mark.parametrize("delay", [0.0, 0.00001, 0.0001, 0.001, 0.01])
def test_a_lookup_cancelled_at_any_moment_leaves_no_socket_open(delay: float) -> None:
    """Bascule stops while a lookup waits on a silent server; the loop must close clean
    (uvloop leaks a UDP transport cancelled while being made, and then warns)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    lookup = DnsLookup([("127.0.0.1", silent.getsockname()[1])])

    async def main() -> None:
        task = asyncio.create_task(lookup.addresses("app.test"))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await lookup.close()

    loop = new_event_loop()
    try:
        before = fd_count()
        loop.run_until_complete(main())
        assert fd_count() == before
    finally:
        loop.close()
        silent.close()
