"""WebSocket through the proxy: the upgrade, then a tunnel both ways until idle."""

from __future__ import annotations

import os
import time

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from e2e.proxy import config


@pytest.fixture
def ws_backend(backend_loop):
    """A websockets echo server on the backends' loop; yields its port."""

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def start():
        return await serve(echo, "127.0.0.1", 0, ping_interval=None, max_size=None)

    server = backend_loop.call(start())
    yield server.sockets[0].getsockname()[1]
    server.close()
    backend_loop.call(server.wait_closed())


def test_websocket_echo_both_ways_through_proxy(ws_backend, bascule):
    proxy = bascule(config(ws_backend))
    big = os.urandom(4 * 1024 * 1024)
    with connect(f"ws://127.0.0.1:{proxy.port}/chat", ping_interval=None, max_size=None) as ws:
        for text in ("hello", "again", "é ✓"):
            ws.send(text)
            assert ws.recv(timeout=5) == text
        ws.send(big)
        assert ws.recv(timeout=10) == big
    log = proxy.last_log()
    assert log["status"] == 101


def test_idle_websocket_tunnel_closed_after_upstream_read_timeout(ws_backend, bascule):
    proxy = bascule(config(ws_backend, upstream={"timeouts": {"read": "500ms"}}))
    with connect(f"ws://127.0.0.1:{proxy.port}/", ping_interval=None) as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert 0.4 < time.monotonic() - started < 3
