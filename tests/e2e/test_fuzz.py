"""Random bytes at a live proxy: a 4xx and a close, or just a close, within 2 s; and the
proxy keeps serving."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e.backends import fixed, http
from e2e.proxy import Proxy, config
from e2e.wire import Wire

START_LINES = st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\nHost: a\r\n"])


@pytest.fixture(scope="module")
def live(backend_loop, tmp_path_factory):
    server = backend_loop.start(http(fixed()))
    log = tmp_path_factory.mktemp("fuzz") / "access.log"
    cfg = config(server, listener={"timeouts": {"header": "1s", "body": "1s"}})
    proxy = Proxy({**cfg, "access_log": {"path": str(log)}}, log)
    yield proxy
    proxy.stop()
    backend_loop.stop(server)


def outcome(port: int, data: bytes) -> bytes:
    """Everything the proxy sends before it closes; fails if it stays open past 2 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + 2
        try:
            while chunk := sock.recv(65536):
                received += chunk
                assert time.monotonic() < deadline, "the proxy kept the connection open"
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"no close within 2 s; got {received[:100]!r}")
    return received


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(prefix=START_LINES, junk=st.binary(min_size=1, max_size=300))
def test_random_bytes_get_4xx_and_close_or_just_close(live, prefix, junk):
    # The NUL after an empty line is never valid, so every input ends in a refusal even
    # if the random part happened to complete a valid request (answered normally first).
    received = outcome(live.port, prefix + junk + b"\r\n\r\n\x00")
    if received:
        last = received[received.rindex(b"HTTP/1.1 ") :]
        assert last[:10] == b"HTTP/1.1 4", received[:200]
        assert b"\r\nConnection: close\r\n" in last.split(b"\r\n\r\n")[0] + b"\r\n"


def test_proxy_still_serves_after_the_fuzzing(live):
    with Wire(live.port) as wire:
        assert wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").body == b"hello"
