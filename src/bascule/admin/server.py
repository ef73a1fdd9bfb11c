"""The admin listener's HTTP: small, strict, one request per connection. `/` is the
dashboard; everything else is the API.

Admin traffic is a scrape every few seconds and an operator's browser, so this favours
plain code over speed: read one request head (at most `MAX_HEAD` bytes, within
`READ_TIMEOUT`), answer it with `Connection: close`, close. Anything that is not a
well-formed HTTP/1.x request gets a 400 and the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import unquote

from bascule import __version__
from bascule import config as cfg
from bascule.admin.openapi import OPENAPI
from bascule.admin.prometheus import CONTENT_TYPE, exposition
from bascule.admin.upstreams import History, upstreams_document
from bascule.telemetry.node import TelemetryDir
from bascule.upstream.health_board import HealthBoard

__all__ = ["AdminApi", "Answer", "serve_admin"]

log = logging.getLogger("bascule.admin")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
READ_TIMEOUT = 10.0
PURGE_WAIT = 5.0  # seconds a purge waits for every worker to report it done
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
}
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_AUTHORIZATION = re.compile(rb"\r\nauthorization:[ \t]*bearer[ \t]+([^\r]*)", re.IGNORECASE)
_TARGET_ACTION = re.compile(r"/api/upstreams/([^/]+)/targets/([^/]+)/(drain|enable|disable|weight)")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    extra: str = ""  # more header lines, each "Name: value\r\n"


Handler = Callable[[bytes], Awaitable[Answer]]


def _json(status: int, document: Any) -> Answer:
    return Answer(status, json.dumps(document, indent=2).encode() + b"\n")


def _error(status: int, message: str) -> Answer:
    return _json(status, {"error": message})


class AdminApi:
    """What each admin path answers, from the node's telemetry directory."""

    def __init__(
        self, directory: TelemetryDir, board: HealthBoard | None = None, token: bytes | None = None
    ) -> None:
        self.directory = directory
        self.token = token  # every request must carry it (admin.token_file), if set
        self.board = board
        self.history = History(directory)
        self.routes: dict[str, tuple[str, Handler]] = {
            "/metrics": ("GET", self.metrics),
            "/api/status": ("GET", self.status),
            "/api/upstreams": ("GET", self.upstreams),
            "/api/routes": ("GET", self.routes_document),
            "/api/reload": ("POST", self.reload),
            "/api/cache/purge": ("POST", self.purge),
            "/api/openapi.json": ("GET", self.openapi),
        }

    def allows(self, head: bytes) -> bool:
        """Does the request carry the token (when one is set)?"""
        if self.token is None:
            return True
        given = _AUTHORIZATION.search(head)
        return given is not None and hmac.compare_digest(given.group(1).strip(), self.token)

    async def answer(self, method: str, path: str, body: bytes) -> Answer:
        path = path.partition("?")[0]
        action = _TARGET_ACTION.fullmatch(path)
        if action is not None:
            verb = action.group(3)
            wanted = "PUT" if verb == "weight" else "POST"
            if method != wanted:
                return _error(405, f"{path} answers {wanted} only")
            upstream, target = unquote(action.group(1)), unquote(action.group(2))
            return self.control(upstream, target, verb, body)
        found = self.routes.get(path)
        if found is None:
            endpoints = [*self.routes, "/api/upstreams/{u}/targets/{t}/drain|enable|disable|weight"]
            return _error(404, f"no admin endpoint at {path}; try {', '.join(endpoints)}")
        allowed, handler = found
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            return _error(405, f"{path} answers {allowed} only")
        return await handler(body)

    async def routes_document(self, _: bytes) -> Answer:
        """Every route of the running config, in the order they are tried, with the
        requests each answered."""
        node = self.directory.read("node.json") or {}
        config_file = (node.get("config") or {}).get("file")
        try:
            loaded = cfg.load(config_file) if config_file else None
        except (cfg.ConfigError, OSError):
            loaded = None
        counts: dict[str, int] = {}
        for series, count in self.directory.totals().requests.items():
            route = series[1]
            counts[route] = counts.get(route, 0) + count
        routes = [] if loaded is None else loaded.config.routes
        document = [
            {
                **spec.model_dump(mode="json", exclude_defaults=True),
                "requests_total": counts.get(spec.name, 0),
            }
            for spec in routes
        ]
        return _json(200, {"routes": document})

    async def reload(self, _: bytes) -> Answer:
        """Check the config file as `bascule check` does; if it is good, ask the
        supervisor to reload it (202: /api/status says how it went)."""
        from bascule.runtime.server import Unsupported, check_supported

        node = self.directory.read("node.json") or {}
        config_file, pid = (node.get("config") or {}).get("file"), node.get("pid")
        if not config_file or not isinstance(pid, int):
            return _error(500, "the node has not said which file and process to reload")
        try:
            loaded = cfg.load(config_file)
            check_supported(loaded.config)
        except cfg.ConfigError as exc:
            return _json(
                400, {"error": "the file is not valid; nothing changed", "problems": str(exc)}
            )
        except (Unsupported, OSError) as exc:
            return _json(400, {"error": f"the file cannot be served; nothing changed: {exc}"})
        os.kill(pid, signal.SIGHUP)
        log.info("admin: reload of %s asked of the supervisor %d", config_file, pid)
        return _json(202, {"reload": "started", "file": config_file, "see": "/api/status"})

    async def openapi(self, _: bytes) -> Answer:
        return _json(200, OPENAPI)

    async def upstreams(self, _: bytes) -> Answer:
        overrides = self.directory.controls()["targets"]
        return _json(200, upstreams_document(self.history, self.board, overrides))

    def control(self, upstream: str, target: str, verb: str, body: bytes) -> Answer:
        """Drain, enable, disable or reweigh a target, in every worker, until the next
        reload."""
        known = self.directory.totals().targets
        if not any(u == upstream for u, _ in known):
            return _error(404, f"no upstream {upstream!r}")
        if (upstream, target) not in known:
            names = sorted(t for u, t in known if u == upstream)
            return _error(404, f"upstream {upstream!r} has no target {target!r}; it has {names}")
        key = f"{upstream}/{target}"
        if verb == "weight":
            try:
                weight = json.loads(body)["weight"]
            except (ValueError, TypeError, KeyError):
                weight = None
            if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 1000:
                return _error(400, 'expected a JSON body such as {"weight": 3} (1-1000)')
            current = self.directory.set_control(key, weight=weight)
        else:
            hold = {"drain": "draining", "disable": "operator", "enable": None}[verb]
            current = self.directory.set_control(key, hold=hold)
        log.info("admin: %s %s of upstream %s: now %s", verb, target, upstream, current)
        return _json(200, {"upstream": upstream, "target": target, **current})

    async def metrics(self, _: bytes) -> Answer:
        return Answer(200, exposition(self.directory), CONTENT_TYPE)

    async def purge(self, body: bytes) -> Answer:
        """Purge the cache keys starting with a prefix, in every worker; answer once every
        worker has (or after PURGE_WAIT, saying which have not)."""
        try:
            prefix = json.loads(body)["prefix"]
        except (ValueError, TypeError, KeyError):
            prefix = None
        if not isinstance(prefix, str):
            return _error(400, 'expected a JSON body such as {"prefix": "https://shop.test/"}')
        number = self.directory.request_purge(prefix)
        deadline = time.monotonic() + PURGE_WAIT
        while True:
            reports = [s.get("purged", [0, 0]) for s in self.directory.live()]
            done = [keys for last, keys in reports if last >= number]
            if len(done) == len(reports) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        document = {
            "prefix": prefix,
            "keys": sum(done),
            "workers": {"done": len(done), "reporting": len(reports)},
        }
        return _json(200, document)

    async def status(self, _: bytes) -> Answer:
        node = self.directory.read("node.json") or {}
        totals = self.directory.totals()
        started = node.get("started")
        return _json(
            200,
            {
                "version": __version__,
                "pid": node.get("pid"),
                "started": started,
                "uptime_seconds": round(time.time() - started, 3) if started else None,
                "config": node.get("config"),
                "workers": {"configured": node.get("workers"), "reporting": totals.workers},
                "reloads": node.get("reloads", {"ok": 0, "failed": 0}),
                "last_reload": node.get("last_reload"),
                # runtime changes made through this API, which the file does not say
                "overrides": self.directory.controls()["targets"],
            },
        )


async def serve_admin(api: AdminApi, sock: socket.socket, stop: asyncio.Event) -> None:
    """Answer on `sock` until `stop` is set."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                size = int(length.group(1)) if length else 0
                if size > MAX_BODY:
                    raise _TooLarge
                body = await reader.readexactly(size) if size else b""
            head_only = head.startswith(b"HEAD ")
            answer = await _parse_and_answer(api, head, body)
        except _TooLarge:
            answer = _error(413, f"an admin request body is at most {MAX_BODY} bytes")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            answer = _error(400, "expected one HTTP/1.1 request")
        except Exception:  # a bug must not take the admin listener down
            log.exception("admin request failed")
            answer = _error(500, "internal error; see the log")
        writer.write(_response(answer, head_only=head_only))
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, sock=sock, limit=MAX_HEAD)
    sampling = asyncio.get_running_loop().create_task(api.history.keep(), name="history")
    try:
        async with server:
            await stop.wait()
    finally:
        sampling.cancel()


class _TooLarge(Exception):
    pass


async def _parse_and_answer(api: AdminApi, head: bytes, body: bytes) -> Answer:
    line = head[: head.find(b"\r\n")].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return _error(400, "expected a request line such as GET /metrics HTTP/1.1")
    method, path = parts[0], parts[1]
    if path.partition("?")[0] == "/" and method in ("GET", "HEAD"):
        return dashboard()  # the page holds no data: it asks the API, with the token
    if not api.allows(head):
        refused = _error(401, "this admin listener needs Authorization: Bearer <token>")
        return Answer(
            refused.status, refused.body, extra='WWW-Authenticate: Bearer realm="bascule"\r\n'
        )
    return await api.answer(method, path, body)


@functools.cache
def dashboard() -> Answer:
    """The dashboard: one page, everything inline (no CDN, no fonts fetched)."""
    page = resources.files("bascule.admin").joinpath("dashboard.html").read_bytes()
    return Answer(200, page, "text/html; charset=utf-8")


def _response(answer: Answer, *, head_only: bool) -> bytes:
    reason = _REASONS.get(answer.status, "Error")
    head = (
        f"HTTP/1.1 {answer.status} {reason}\r\nContent-Type: {answer.content_type}\r\n"
        f"Content-Length: {len(answer.body)}\r\nCache-Control: no-store\r\n{answer.extra}"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + answer.body
