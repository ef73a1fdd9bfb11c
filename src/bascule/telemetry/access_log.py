"""The access log: one JSON object per line, per request, written in blocks.

Lines are formatted by hand (no json.dumps per request) and buffered; the buffer is written
when it holds enough or at the latest every FLUSH_INTERVAL, so a quiet server's lines still
show up promptly. The timestamp string is formatted once per second.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from time import monotonic
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from bascule.proxy.exchange import Exchange

FLUSH_INTERVAL = 0.5  # seconds a line may wait in the buffer
FLUSH_LINES = 256  # or as many lines, whichever comes first

_UNSAFE = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')


def _json_bytes(value: bytes) -> str:
    """A JSON string for raw bytes, fast when there is nothing to escape (the usual case)."""
    if _UNSAFE.search(value) is None:
        return '"' + value.decode("ascii") + '"'
    return json.dumps(value.decode("utf-8", "backslashreplace"))


def _json_str(value: str | None) -> str:
    return "null" if value is None else json.dumps(value)


class AccessLog:
    __slots__ = ("_buffer", "_handle", "_out", "_second", "_stamp")

    def __init__(self, out: IO[bytes] | None) -> None:
        """`out` None disables the log."""
        self._out = out
        self._buffer: list[str] = []
        self._second = -1
        self._stamp = ""
        self._handle: asyncio.TimerHandle | None = None

    @classmethod
    def open(cls, enabled: bool, path: str) -> AccessLog:
        if not enabled:
            return cls(None)
        if path == "-":
            return cls(sys.stdout.buffer)
        return cls(open(path, "ab"))

    def write(self, client_ip: bytes, ex: Exchange) -> None:
        if self._out is None:
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        elapsed_now = monotonic()
        head = ex.head
        plan = ex.plan
        upstream = plan.upstream if plan is not None else None
        target = ex.target
        error = ex.error
        upstream_ms = (
            f"{(elapsed_now - ex.upstream_started) * 1000:.3f}" if ex.upstream_started else "null"
        )
        line = (
            f'{{"time":"{self._stamp}.{int((now - second) * 1000):03d}Z",'
            f'"client":"{client_ip.decode("ascii")}",'
            f'"method":{_json_bytes(head.method)},"path":{_json_bytes(head.target)},'
            f'"status":{ex.status},"bytes_in":{ex.bytes_in},"bytes_out":{ex.bytes_out},'
            f'"route":{_json_str(plan.name) if plan is not None else "null"},'
            f'"upstream":{_json_str(upstream.name) if upstream is not None else "null"},'
            f'"target":{_json_str(target.name) if target is not None else "null"},'
            f'"duration_ms":{(elapsed_now - ex.started) * 1000:.3f},"upstream_ms":{upstream_ms},'
            f'"error_source":{_json_str(error.source.value) if error is not None else "null"},'
            f'"error":{_json_str(error.message) if error is not None else "null"}}}\n'
        )
        buffer = self._buffer
        buffer.append(line)
        if len(buffer) >= FLUSH_LINES:
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._out is None or not self._buffer:
            return
        data = "".join(self._buffer).encode("utf-8")
        self._buffer.clear()
        try:
            self._out.write(data)
            self._out.flush()
        except OSError:
            pass  # a closed or full log must not take requests down with it

    def close(self) -> None:
        self.flush()
        if self._out is not None and self._out is not sys.stdout.buffer:
            self._out.close()
