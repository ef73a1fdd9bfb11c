"""Python cost of one proxied request, without sockets: µs per request through the engine.

Drives a DownstreamConnection and a pooled UpstreamConnection over in-memory transports,
so the figure is the engine's own CPU time (no kernel, no load generator). Use it to see
what a change to the hot path costs; use bench/run.py (wrk beside nginx) for the real thing.

    .venv/bin/python bench/inprocess.py [--requests 200000] [--profile host|browser] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

from bascule import config
from bascule.net.event_loop import run
from bascule.proxy.downstream import DownstreamConnection
from bascule.proxy.upstream_connection import UpstreamConnection
from bascule.runtime.build import build_listener_context, build_selections, build_upstreams
from bascule.telemetry.access_log import AccessLog

CONFIG = """
listeners: [{name: bench, bind: "127.0.0.1:1"}]
routes: [{name: all, match: {path: /}, upstream: backends}]
upstreams:
  backends:
    targets: [{address: "127.0.0.1:2"}, {address: "127.0.0.1:3"}]
"""

HOST_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER_REQUEST = (
    b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    b"*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9,fr;q=0.8\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\nReferer: https://www.example.com/start/page.html\r\n"
    b"Cookie: session=abcdef0123456789; theme=dark; _ga=GA1.2.1234567890.1234567890\r\n"
    b"Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-User: ?1\r\nUpgrade-Insecure-Requests: 1\r\nCache-Control: max-age=0\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 09:46:29 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 100\r\n"
    b"Connection: keep-alive\r\n\r\n" + b"x" * 100
)


class MemoryTransport:
    """Just enough of asyncio.Transport for the engine; counts what is written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


async def measure(requests: int, request: bytes, profile: bool) -> None:
    loaded = config.load_text(CONFIG)
    upstreams = build_upstreams(loaded.config)
    sink = io.BytesIO()
    ctx = build_listener_context(
        loaded.config.listeners[0],
        loaded.config,
        upstreams,
        AccessLog(sink),
        build_selections(loaded.config, upstreams),
    )
    client = DownstreamConnection(ctx)
    client_transport = MemoryTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    conns = []
    for target in upstreams["backends"].targets:
        conn = UpstreamConnection(upstreams["backends"])
        conn.connection_made(MemoryTransport())  # type: ignore[arg-type]
        target.pool.put_back(conn)
        conns.append(conn)

    def one() -> None:
        client.data_received(request)
        conn = client.ex.upstream_conn  # type: ignore[union-attr]
        conn.data_received(RESPONSE)  # type: ignore[union-attr]

    for _ in range(1000):
        one()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for _ in range(requests):
        one()
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    if client_transport.written == 0 or client.ex is not None:
        raise SystemExit("the engine did not answer: this measurement is void")
    print(f"{elapsed / requests * 1e6:.2f} µs of Python per request ({len(request)}-byte request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--profile", choices=["host", "browser"], default="host")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    request = HOST_REQUEST if args.profile == "host" else BROWSER_REQUEST
    run(measure(args.requests, request, args.cprofile))


if __name__ == "__main__":
    main()
