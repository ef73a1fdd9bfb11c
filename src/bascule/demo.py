"""`bascule demo`: three small backends and Bascule in front of them, on one event loop.

Nothing to write: the config is built in, and what to try is printed at start.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bascule import config
from bascule.net.event_loop import run
from bascule.runtime.server import serve

DEMO_CONFIG = """\
access_log: {{path: "-"}}
listeners:
  - {{name: demo, bind: "127.0.0.1:{port}"}}
routes:
  - name: health
    match: {{path_exact: /health}}
    respond: {{status: 200, body: "ok\\n"}}
  - name: old-pages
    match: {{path: /old/}}
    redirect: {{to: "http://{{host}}/", status: 301}}
  - name: api
    match: {{path: /api/}}
    upstream: api
    rewrite: {{strip_prefix: /api}}
    headers:
      response: {{set: {{X-Served-By: bascule-demo}}}}
  - name: site
    match: {{path: /}}
    upstream: web
upstreams:
  web:
    balance: round_robin
    targets:
      - {{address: "127.0.0.1:{b1}", weight: 2}}
      - {{address: "127.0.0.1:{b2}"}}
      - {{address: "127.0.0.1:{b3}"}}
  api:
    targets:
      - {{address: "127.0.0.1:{b1}"}}
      - {{address: "127.0.0.1:{b2}"}}
      - {{address: "127.0.0.1:{b3}"}}
"""


class DemoBackend(asyncio.Protocol):
    """Answers every request with a line of JSON naming itself; keeps connections alive."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(headers.get("content-length", "0"))
            self.buffer = self.buffer[length:]  # a demo: bodies are small and ignored
            body = (
                json.dumps(
                    {
                        "backend": self.name,
                        "method": method,
                        "path": target,
                        "x_forwarded_for": headers.get("x-forwarded-for"),
                    }
                ).encode()
                + b"\n"
            )
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
            )


async def _demo(port: int) -> int:
    loop = asyncio.get_running_loop()
    backends = []
    for i in (1, 2, 3):
        name = f"backend-{i}"
        server = await loop.create_server(lambda n=name: DemoBackend(n), "127.0.0.1", 0)  # type: ignore[misc]
        backends.append(server)
    ports = [s.sockets[0].getsockname()[1] for s in backends]
    text = DEMO_CONFIG.format(port=port, b1=ports[0], b2=ports[1], b3=ports[2])
    loaded = config.load_text(text, "<built-in demo config>")

    def ready(bound: list[tuple[str, str, int]]) -> None:
        url = f"http://127.0.0.1:{bound[0][2]}"
        print(
            f"\nBascule demo: backends on 127.0.0.1 ports {', '.join(map(str, ports))}; "
            f"the proxy on {url}\n\nTry:\n"
            f"  for i in 1 2 3 4 5 6 7 8; do curl -s {url}/; done   # weighted round robin 2:1:1\n"
            f"  curl -i {url}/api/users    # /api is stripped before the backend sees it\n"
            f"  curl -i {url}/old/page     # a redirect Bascule answers itself\n"
            f"  curl -i {url}/health       # a fixed response\n"
            f"  curl -i {url}/ -H 'Transfer-Encoding: chunked' -H 'Content-Length: 3'"
            f"   # refused: 400\n\n"
            "Access log lines (JSON) follow. Ctrl-C stops everything.\n",
            file=sys.stderr,
            flush=True,
        )

    try:
        return await serve(loaded.config, on_ready=ready)
    finally:
        for server in backends:
            server.close()


def run_demo(port: int = 8080) -> int:
    try:
        return run(_demo(port))
    except OSError as exc:
        print(f"bascule demo: {exc} (try --port)", file=sys.stderr)
        return 1
