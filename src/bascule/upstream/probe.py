"""Probes: one active health check of one target, on a fresh connection, within a timeout.

A probe never reuses the proxy's pooled connections: a check must see what a new client
would see (a target that accepts no new connections is down even while old ones work). The
connection is aborted when the check ends, whatever its outcome, so a check leaves no socket
behind (and no TIME_WAIT on Bascule's side).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bascule.balancing.state import parse_load_body, parse_load_header
from bascule.config.units import format_duration
from bascule.http.codec import ResponseReader
from bascule.http.errors import HttpError
from bascule.http.head import ResponseHead
from bascule.net.tls import describe_handshake_error
from bascule.upstream.target import Target

__all__ = ["BODY_LIMIT", "HttpProbe", "Outcome", "Probe", "TcpProbe", "fresh_connection"]

BODY_LIMIT = 64 * 1024
"""Bytes of a check's response body read and searched; a health endpoint says what it has
to say in far less, and a larger one must not cost memory or time."""

HEAD_LIMIT = 16 * 1024
"""Largest response head a check accepts."""

READ_SIZE = 16 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one check found: whether the target passed, why (for the log line), and the
    load it reported, if it did."""

    passed: bool
    reason: str
    load: float | None = None


class Probe(Protocol):
    label: str  # what the check does, for log lines: "GET /healthz", "TCP connect"

    async def check(self, target: Target, within: float) -> Outcome:
        """Check `target` once, within `within` seconds from connect to the last byte read;
        never raises for anything the target does."""
        ...


def _connect_failure(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    if isinstance(exc, ssl.SSLError):
        return describe_handshake_error(exc)
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror or exc}"
    return f"connect failed: {exc.strerror or exc}"


async def fresh_connection(
    target: Target, *, tls: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection; with `tls`, TLS as the proxy's own when the upstream has `tls:`."""
    pool = getattr(target, "pool", None) if tls else None  # a bare Target has no pool yet
    if pool is None or pool.tls is None:
        return await asyncio.open_connection(target.host, target.port, limit=READ_SIZE)
    return await asyncio.open_connection(
        target.host,
        target.port,
        limit=READ_SIZE,
        ssl=pool.tls,
        server_hostname=pool.server_hostname,
    )


class TcpProbe:
    """Passes if the target accepts a TCP connection within the timeout."""

    label = "TCP connect"

    async def check(self, target: Target, within: float) -> Outcome:
        writer = None
        try:
            async with asyncio.timeout(within):
                _, writer = await fresh_connection(target)
        except TimeoutError:
            return Outcome(False, f"timeout {format_duration(within)} (no connection)")
        except OSError as exc:
            return Outcome(False, _connect_failure(exc))
        finally:
            if writer is not None:
                writer.transport.abort()
        return Outcome(True, "connect ok")


class _Response:
    """Collects the response a check reads: its head and the first BODY_LIMIT body bytes."""

    __slots__ = ("body", "complete", "head", "size")

    def __init__(self) -> None:
        self.head: ResponseHead | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.complete = False

    def on_informational(self, head: ResponseHead) -> None:
        pass

    def on_response_head(self, head: ResponseHead) -> None:
        self.head = head

    def on_response_body(self, chunk: bytes) -> None:
        if self.size < BODY_LIMIT:
            self.body.append(chunk[: BODY_LIMIT - self.size])
            self.size += min(len(chunk), BODY_LIMIT - self.size)

    def on_response_end(self) -> None:
        self.complete = True

    @property
    def full(self) -> bool:
        """Enough read to judge: the whole response, or as much body as a check reads."""
        return self.complete or self.size >= BODY_LIMIT


class HttpProbe:
    """Sends one HTTP/1.1 request with `Connection: close` and judges the response.

    - `statuses`: inclusive ranges of statuses that pass;
    - `body`: a pattern the body (its first BODY_LIMIT bytes, as UTF-8) must contain;
    - `load_header`: least_load only, the lower-case header targets report their load in;
      a response without it may report its load in the body (`parse_load_body`).
    """

    __slots__ = (
        "_head_request",
        "_host",
        "_prefix",
        "_suffix",
        "body",
        "label",
        "load_header",
        "statuses",
    )

    def __init__(
        self,
        *,
        method: str = "GET",
        path: str = "/healthz",
        host: str | None = None,
        headers: Mapping[str, str] | None = None,
        statuses: tuple[tuple[int, int], ...] = ((200, 399),),
        body: re.Pattern[str] | None = None,
        load_header: bytes | None = None,
    ) -> None:
        self.statuses = statuses
        self.body = body
        self.load_header = load_header
        self.label = f"{method} {path}"  # how log lines name the check
        self._head_request = method == "HEAD"
        extra = dict(headers or {})
        if not any(name.lower() == "user-agent" for name in extra):
            extra["User-Agent"] = "bascule-health-check"
        lines = "".join(f"{name}: {value}\r\n" for name, value in extra.items())
        self._prefix = f"{method} {path} HTTP/1.1\r\nHost: ".encode()
        self._suffix = f"\r\n{lines}Connection: close\r\n\r\n".encode()
        # The Host header: the configured one, else each target's own address.
        self._host = host.encode() if host is not None else None

    def request(self, target: Target) -> bytes:
        """The request bytes for `target`."""
        host = self._host if self._host is not None else target.address
        return self._prefix + host + self._suffix

    def judge(self, head: ResponseHead, body: bytes) -> Outcome:
        """Pass or fail a response, and the load it reports (pure: no I/O)."""
        status = head.status
        reason = f"{self.label} → {status}"
        load = self._load(head, body)
        if not any(low <= status <= high for low, high in self.statuses):
            return Outcome(False, reason, load)
        if self.body is not None and not self.body.search(body.decode("utf-8", "replace")):
            return Outcome(False, f"{reason}, body does not match /{self.body.pattern}/", load)
        return Outcome(True, reason, load)

    def _load(self, head: ResponseHead, body: bytes) -> float | None:
        if self.load_header is None:
            return None
        value = head.header(self.load_header)
        if value is not None:
            return parse_load_header(value)
        return parse_load_body(body) if body else None

    async def check(self, target: Target, within: float) -> Outcome:
        response = _Response()
        reader = ResponseReader(response, HEAD_LIMIT)
        if self._head_request:
            reader.expect_head_response()
        writer = None
        connected = False
        try:
            async with asyncio.timeout(within):
                stream, writer = await fresh_connection(target, tls=True)
                connected = True
                writer.write(self.request(target))
                while not response.full:
                    data = await stream.read(READ_SIZE)
                    if not data:
                        reader.eof()
                        break
                    reader.feed(data)
        except TimeoutError:
            waited = format_duration(within)
            if not connected:
                return Outcome(False, f"timeout {waited} (no connection)")
            if response.head is None:
                return Outcome(False, f"timeout {waited} (no response to {self.label})")
            return Outcome(False, f"timeout {waited} (the response to {self.label} stalled)")
        except HttpError as exc:
            return Outcome(False, f"{self.label}: malformed response: {exc.reason}")
        except OSError as exc:
            if not connected:
                return Outcome(False, _connect_failure(exc))
            return Outcome(False, f"{self.label}: connection lost: {exc.strerror or exc}")
        finally:
            if writer is not None:
                writer.transport.abort()
        if response.head is None:
            return Outcome(False, f"{self.label}: connection closed before a response")
        if not response.full:
            return Outcome(False, f"{self.label} → {response.head.status}, body cut short")
        return self.judge(response.head, b"".join(response.body))
