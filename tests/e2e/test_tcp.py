"""tcp listeners end to end: bytes both ways, half-close, failover, timeouts, the connection
limit and balancing, against real targets on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import threading
import time

import pytest

from e2e.backends import refused_port
from e2e.proxy import wait_until
from e2e.tcp_backends import (
    Recorder,
    answer_after_eof,
    closed_at_once,
    connect,
    echo,
    flood,
    read_all,
    tcp_config,
    unresponsive_port,
)


@pytest.fixture
def tcp_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bascule.tcp")
    return caplog


def test_bytes_pass_both_ways_untouched(backend, bascule):
    target = backend(echo, raw=True)
    proxy = bascule(tcp_config(target))
    payload = os.urandom(3 * 1024 * 1024)
    with connect(proxy.port) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(1)))
        sender.start()
        echoed = read_all(sock)
        sender.join(5)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
    line = proxy.last_log()
    assert line["protocol"] == "tcp"
    assert line["listener"] == "tcp"
    assert line["upstream"] == "app"
    assert line["target"] == target.address
    assert line["bytes_in"] == line["bytes_out"] == len(payload)
    assert line["error"] is None
    assert line["connect_us"] is not None


def test_client_half_close_still_gets_the_answer(backend, bascule):
    """The client's FIN reaches the target; the target's answer still reaches the client."""
    proxy = bascule(tcp_config(backend(answer_after_eof, raw=True)))
    with connect(proxy.port) as sock:
        sock.sendall(b"x" * 100_000)
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b"got 100000 bytes"
    assert proxy.last_log()["closed_by"] == "client"


def test_target_half_close_lets_the_client_keep_sending(backend, bascule):
    recorder = Recorder(greeting=b"hello, then FIN\n")
    proxy = bascule(tcp_config(backend(recorder, raw=True)))
    with connect(proxy.port) as sock:
        assert read_all(sock) == b"hello, then FIN\n"  # the target's FIN came through
        sock.sendall(b"still talking")
        sock.shutdown(socket.SHUT_WR)
        assert wait_until(lambda: recorder.received == [b"still talking"])
    assert proxy.last_log()["closed_by"] == "target"


def test_a_slow_client_slows_the_target_down(backend, bascule):
    """Backpressure: while the client reads nothing, the target cannot write much more
    than the socket buffers hold; then everything arrives."""
    total = 64 * 1024 * 1024
    written: list[int] = []
    proxy = bascule(tcp_config(backend(flood(total, written), raw=True)))
    with connect(proxy.port, timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        assert wait_until(lambda: bool(written) and written[0] > 0)
        time.sleep(0.5)
        stalled = written[0]
        time.sleep(0.3)
        assert written[0] == stalled < total, "the target kept writing to a client reading none"
        received = 0
        while received < total:
            data = sock.recv(1 << 20)
            assert data
            received += len(data)
    assert received == total


def test_a_slow_target_slows_the_client_down(backend, backend_loop, bascule):
    """Backpressure the other way: a target that reads nothing stops Bascule reading from
    the client once the buffers are full; then everything arrives. The client starts
    sending while Bascule is still connecting (the first target never accepts), when
    nothing may be read beyond what is held for the target."""
    go = asyncio.Event()
    received = [0]

    async def lazy(target, reader, writer):
        await go.wait()
        while data := await reader.read(1 << 20):
            received[0] += len(data)

    port, held = unresponsive_port()
    upstream = {"timeouts": {"connect": "500ms"}}
    proxy = bascule(tcp_config(port, backend(lazy, raw=True), upstream=upstream))
    with connect(proxy.port) as sock:
        sock.setblocking(False)
        chunk = b"c" * 65536
        sent = 0
        last_progress = time.monotonic()
        while time.monotonic() - last_progress < 0.3:
            try:
                sent += sock.send(chunk)
                last_progress = time.monotonic()
            except BlockingIOError:
                time.sleep(0.005)
            # the socket buffers on the way hold about 10 MB here; reading on regardless
            # while connecting took 130 MB
            assert sent < 48 * 1024 * 1024, "Bascule read on without a place to send to"
        backend_loop.loop.call_soon_threadsafe(go.set)
        sock.setblocking(True)
        sock.shutdown(socket.SHUT_WR)
        assert wait_until(lambda: received[0] == sent, timeout=5)
    for sock in held:
        sock.close()


def test_a_refused_target_fails_over_to_the_next(backend, bascule, tcp_log):
    dead = refused_port()
    target = backend(echo, raw=True)
    proxy = bascule(tcp_config(dead, target))
    for _ in range(4):
        with connect(proxy.port) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
    assert target.connections == 4
    failures = [m for m in tcp_log.messages if f"127.0.0.1:{dead} failed" in m]
    assert failures
    assert all("trying another target" in m for m in failures)


def test_a_connect_timeout_fails_over(backend, bascule, tcp_log):
    port, held = unresponsive_port()
    try:
        target = backend(echo, raw=True)
        proxy = bascule(tcp_config(port, target, upstream={"timeouts": {"connect": "200ms"}}))
        started = time.monotonic()
        for _ in range(2):
            with connect(proxy.port) as sock:
                sock.sendall(b"ping")
                assert sock.recv(4) == b"ping"
        assert time.monotonic() - started < 2.5
        assert any("timed out after 0.2s" in m for m in tcp_log.messages)
    finally:
        for sock in held:
            sock.close()


def test_when_every_target_fails_the_client_is_closed_and_logged(bascule, tcp_log):
    proxy = bascule(tcp_config(refused_port(), refused_port()))
    with connect(proxy.port) as sock:
        assert closed_at_once(sock, timeout=3)
    line = proxy.last_log()
    assert line["error_source"] == "upstream"
    assert line["error"].endswith("Connection refused; no other target of upstream 'app' to try")


def test_an_idle_connection_is_closed_on_both_sides(backend, bascule, tcp_log):
    target = backend(echo, raw=True)
    proxy = bascule(tcp_config(target, listener={"timeouts": {"idle": "300ms"}}))
    with connect(proxy.port) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        started = time.monotonic()
        assert closed_at_once(sock, timeout=3)
        assert 0.25 < time.monotonic() - started < 1.5
    assert wait_until(lambda: not target.writers)  # the target's side was closed too
    assert proxy.last_log()["closed_by"] == "idle_timeout"


def test_connections_past_max_connections_are_closed_at_once(backend, bascule, tcp_log):
    target = backend(echo, raw=True)
    proxy = bascule(tcp_config(target, listener={"max_connections": 2}))
    first, second = connect(proxy.port), connect(proxy.port)
    try:
        for sock in (first, second):
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
        with connect(proxy.port) as third:
            assert closed_at_once(third)
        assert any("at max_connections (2)" in m for m in tcp_log.messages)
        first.close()
        assert wait_until(lambda: proxy.call(lambda: target.connections) == 2)
        time.sleep(0.1)  # the proxy sees the first one go
        with connect(proxy.port) as fourth:
            fourth.sendall(b"pong")
            assert fourth.recv(4) == b"pong"
    finally:
        first.close()
        second.close()
    refused = [line for line in proxy.log_lines(4) if line["error"]]
    assert refused[0]["error"] == "the listener is at max_connections (2)"


def test_least_conn_counts_open_connections(backend, bascule):
    a, b = backend(echo, raw=True), backend(echo, raw=True)
    proxy = bascule(tcp_config(a, b, upstream={"balance": "least_conn"}))

    def opened() -> socket.socket:
        sock = connect(proxy.port)
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        return sock

    first, second = opened(), opened()
    assert (a.connections, b.connections) == (1, 1)  # the second went where none was open
    by_first = a if len(a.writers) == 1 and a.connections == 1 else b
    first.close()  # its target is idle again: it takes the next two's first
    assert wait_until(lambda: len(by_first.writers) == 0)
    time.sleep(0.05)
    third = opened()
    assert by_first.connections == 2
    for sock in (second, third):
        sock.close()


def test_ip_hash_keeps_a_client_on_one_target(backend, bascule):
    targets = [backend(echo, raw=True) for _ in range(3)]
    proxy = bascule(tcp_config(*targets, upstream={"balance": "ip_hash"}))
    for _ in range(6):
        with connect(proxy.port) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
    assert sorted(t.connections for t in targets) == [0, 0, 6]


def test_a_target_down_by_health_checks_is_skipped(backend, bascule, caplog):
    caplog.set_level(logging.INFO, logger="bascule")
    dead = refused_port()
    target = backend(echo, raw=True)
    health = {"tcp": {}, "interval": "50ms", "jitter": "0%", "unhealthy": 1}
    proxy = bascule(tcp_config(dead, target, upstream={"health": health}))
    assert wait_until(lambda: any("down" in m and str(dead) in m for m in caplog.messages))
    caplog.clear()
    for _ in range(4):
        with connect(proxy.port) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
    assert not [m for m in caplog.messages if "connecting to target" in m]


def test_a_fin_sent_while_connecting_follows_the_held_bytes(backend, bascule):
    """The client sends and half-closes while Bascule is still failing over (the first
    target never accepts): its bytes and then its FIN reach the second target."""
    port, held = unresponsive_port()
    try:
        target = backend(answer_after_eof, raw=True)
        proxy = bascule(tcp_config(port, target, upstream={"timeouts": {"connect": "200ms"}}))
        with connect(proxy.port) as sock:
            sock.sendall(b"y" * 5000)
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock) == b"got 5000 bytes"
    finally:
        for sock in held:
            sock.close()


def test_on_stop_an_open_connection_is_drained_then_closed(backend, bascule):
    target = backend(echo, raw=True)
    proxy = bascule(tcp_config(target))  # drain_timeout: 1s
    with connect(proxy.port) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        stopping = threading.Thread(target=proxy.stop)
        started = time.monotonic()
        stopping.start()
        time.sleep(0.3)
        sock.sendall(b"still")  # draining: the connection keeps working
        assert sock.recv(5) == b"still"
        assert closed_at_once(sock, timeout=3)
        assert 0.9 < time.monotonic() - started < 2.5
        stopping.join(5)
