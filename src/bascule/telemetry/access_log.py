"""The access log: one line per request, written in blocks.

Two formats: a JSON object per line (the default), or nginx's and Apache's "combined"
(`client - - [time] "request line" status bytes "referer" "user agent"`). Lines are
formatted by hand from pieces that are made once and reused (the client of a connection,
the route/upstream/target of an exchange). Exchanges reach the log in batches, once the
listener's metrics have counted them (`ListenerMetrics.settle`: at most 0.5 s after they
end), and each batch is written at once; a tcp connection's line (`ConnectionRecord`, in
either format) is buffered and
written when FLUSH_LINES are waiting, or FLUSH_INTERVAL after the first. The timestamp
string is formatted once per second. Durations are whole microseconds. A log file is reopened on
`reopen()` (SIGUSR1), after logrotate has moved it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from time import monotonic
from typing import IO, TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bascule.proxy.exchange import Exchange

log = logging.getLogger("bascule")

FLUSH_INTERVAL = 0.5  # seconds a line may wait in the buffer
FLUSH_LINES = 256  # or as many lines, whichever comes first

_UNSAFE = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')
_COMBINED_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\xff]')
_NO_ERROR: Final = '"error_source":null,"error":null}\n'
_MILLISECONDS: Final = tuple(f'.{ms:03d}Z"' for ms in range(1000))  # the end of every timestamp
_STATUS: Final = tuple(f',"status":{status},' for status in range(1000))  # three digits at most
PATH_CACHE_SIZE = 1024  # JSON of recent paths: hot endpoints repeat


def json_bytes(value: bytes) -> str:
    """A JSON string for raw bytes, fast when there is nothing to escape (the usual case)."""
    if _UNSAFE.search(value) is None:
        return '"' + value.decode("ascii") + '"'
    return json.dumps(value.decode("utf-8", "backslashreplace"))


def _combined_field(value: bytes | None) -> str:
    return "-" if value is None else _combined_text(value.decode("latin-1"))


def _combined_text(text: str) -> str:
    """As nginx escapes a combined-log field: quotes, backslashes and controls as \\xHH."""
    if _COMBINED_UNSAFE.search(text) is None:
        return text
    return _COMBINED_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02X}", text)


def _json(value: str | None) -> str:
    return "null" if value is None else json.dumps(value)


# What the status of a tcp connection's combined line says, as nginx's stream module's
# $status: completed, the client's fault (a bad PROXY header, no ClientHello in time), the
# target's (connect failed, none available), Bascule's own.
_CONNECTION_STATUS: Final = {None: 200, "downstream": 400, "upstream": 502, "internal": 500}


@dataclass(slots=True, frozen=True)
class ConnectionRecord:
    """What the access log says of a tcp connection, when it ends."""

    client_ip: bytes
    listener: str
    server_name: str | None  # with sni_routes: the name the ClientHello asked for
    upstream: str | None
    target: str | None
    bytes_in: int
    bytes_out: int
    seconds: float
    connect_seconds: float | None
    closed_by: str | None  # "client", "target", "idle_timeout", ...
    error_source: str | None  # "downstream", "upstream", "internal"; None: no error
    error: str | None

    @property
    def status(self) -> int:
        return _CONNECTION_STATUS.get(self.error_source, 500)


def _quote(value: str | None) -> str:
    return "null" if value is None else json.dumps(value)


class AccessLog:
    __slots__ = (
        "_buffer",
        "_combined",
        "_handle",
        "_methods",
        "_out",
        "_path",
        "_paths",
        "_placements",
        "_second",
        "_stamp",
    )

    def __init__(
        self, out: IO[bytes] | None, *, path: str | None = None, combined: bool = False
    ) -> None:
        """`out` None disables the log; `path` is the file `reopen` opens again."""
        self._out = out
        self._path = path
        self._combined = combined
        self._buffer: list[str] = []
        self._second = -1
        self._stamp = ""
        self._handle: asyncio.TimerHandle | None = None
        # '"route":…,"upstream":…,"target":…,' per (route plan, target): few, and recurring
        self._placements: dict[tuple[object, object], str] = {}
        self._methods: dict[bytes, str] = {}
        self._paths: dict[bytes, str] = {}

    @classmethod
    def open(cls, enabled: bool, path: str, format: str = "json") -> AccessLog:
        if not enabled:
            return cls(None)
        combined = format == "combined"
        if path == "-":
            return cls(sys.stdout.buffer, combined=combined)
        return cls(open(path, "ab"), path=path, combined=combined)

    def reopen(self) -> None:
        """Write what is buffered, then open the log file again (logrotate moved it)."""
        if self._path is None or self._out is None:
            return
        self.flush()
        try:
            fresh = open(self._path, "ab")  # noqa: SIM115 - open for the log's whole life
        except OSError as exc:
            log.error(
                "access log %s cannot be reopened, still writing the old one: %s", self._path, exc
            )
            return
        self._out.close()
        self._out = fresh

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def client_prefix(self, client_ip: bytes) -> str:
        """The client's part of every line of one connection, made once per connection."""
        if self._combined:
            return client_ip.decode("latin-1") + " - - ["
        return f',"client":{json_bytes(client_ip)},'

    def write_exchanges(self, exchanges: list[Exchange]) -> None:
        """A line for each exchange (ended: `ex.ended` set), written now."""
        if self._out is None:
            return
        wall_clock = time.time() - monotonic()  # added to a monotonic() reading
        if self._combined:
            for ex in exchanges:
                self._write_combined(ex, int(ex.ended + wall_clock))
        else:
            self._write_json(exchanges, wall_clock)
        self.flush()

    def _write_json(self, exchanges: list[Exchange], wall_clock: float) -> None:
        buffer = self._buffer
        methods = self._methods
        placements = self._placements
        paths = self._paths
        for ex in exchanges:
            now = ex.ended + wall_clock
            second = int(now)
            if second != self._second:
                self._second = second
                self._stamp = time.strftime('{"time":"%Y-%m-%dT%H:%M:%S', time.gmtime(second))
            head = ex.head
            method = methods.get(head.method)
            if method is None:
                method = methods[head.method] = f'"method":{json_bytes(head.method)},'
            placement = placements.get((ex.plan, ex.target))
            if placement is None:
                placement = self._placement(ex)
            path = paths.get(head.target)
            if path is None:
                if len(paths) >= PATH_CACHE_SIZE:
                    paths.clear()
                path = paths[head.target] = json_bytes(head.target)
            error = ex.error
            if error is None:
                error_fields = _NO_ERROR
            else:
                error_fields = (
                    f'"error_source":"{error.source.value}","error":{json.dumps(error.message)}}}\n'
                )
            upstream_started = ex.upstream_started
            request_id = ex.request_id  # made or checked by http.tracing: nothing to escape
            shown_id = f'"{request_id.decode()}"' if request_id else "null"
            buffer.append(
                f"{self._stamp}{_MILLISECONDS[int((now - second) * 1000)]}{ex.log_prefix}"
                f'{method}"path":{path}{_STATUS[ex.status]}"request_id":{shown_id},'
                f'"bytes_in":{ex.bytes_in},"bytes_out":{ex.bytes_out},{placement}'
                f'"duration_us":{int((ex.ended - ex.started) * 1e6)},"upstream_us":'
                f"{int((ex.ended - upstream_started) * 1e6) if upstream_started else 'null'},"
                f"{error_fields}"
            )

    def _write_combined(self, ex: Exchange, second: int) -> None:
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        head = ex.head
        request = (
            f"{head.method.decode('latin-1')} {head.target.decode('latin-1')} HTTP/{head.version}"
        )
        self._buffer.append(
            f'{ex.log_prefix}{self._stamp}] "{_combined_text(request)}" {ex.status} '
            f'{ex.bytes_out} "{_combined_field(head.header(b"referer"))}" '
            f'"{_combined_field(head.header(b"user-agent"))}"\n'
        )

    def _append(self, line: str) -> None:
        buffer = self._buffer
        buffer.append(line)
        if len(buffer) >= FLUSH_LINES:
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def _placement(self, ex: Exchange) -> str:
        plan = ex.plan
        upstream = plan.upstream if plan is not None else None
        placement = (
            f'"route":{_quote(plan.name if plan is not None else None)},'
            f'"upstream":{_quote(upstream.name if upstream is not None else None)},'
            f'"target":{_quote(ex.target.name if ex.target is not None else None)},'
        )
        self._placements[(plan, ex.target)] = placement
        return placement

    def write_connection(self, record: ConnectionRecord) -> None:
        """A tcp connection's line, in the log's format."""
        if self._out is None:
            return
        now = time.time()
        second = int(now)
        if self._combined:
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
            request = f"TCP {record.listener} {record.target or '-'}"
            self._append(
                f"{record.client_ip.decode('latin-1')} - - [{self._stamp}] "
                f'"{_combined_text(request)}" {record.status} {record.bytes_out} "-" "-"\n'
            )
            return
        if second != self._second:
            self._second = second
            self._stamp = time.strftime('{"time":"%Y-%m-%dT%H:%M:%S', time.gmtime(second))
        connect = record.connect_seconds
        self._append(
            f"{self._stamp}{_MILLISECONDS[int((now - second) * 1000)]}"
            f',"client":{json_bytes(record.client_ip)},"protocol":"tcp",'
            f'"listener":{json.dumps(record.listener)},"server_name":{_json(record.server_name)},'
            f'"upstream":{_json(record.upstream)},"target":{_json(record.target)},'
            f'"bytes_in":{record.bytes_in},"bytes_out":{record.bytes_out},'
            f'"duration_us":{int(record.seconds * 1e6)},'
            f'"connect_us":{"null" if connect is None else int(connect * 1e6)},'
            f'"closed_by":{_json(record.closed_by)},'
            f'"error_source":{_json(record.error_source)},"error":{_json(record.error)}}}\n'
        )

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
