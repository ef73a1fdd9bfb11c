"""A recording backend and a raw pipelining client for differential tests.

The backend keeps, per connection, every byte Bascule sent it, and frames requests with h11
(an independent parser, never Bascule's codec). h11 is lenient where a proxy's output must
not be (it takes bare LF line ends and obs-fold in heads, `5 \\r\\n` and 20 hex digits in
chunk lines), so every message it frames is also checked byte by byte against the strict
grammar (`strict_problems`). Each request h11 frames gets a 200 whose body is the target it
arrived with; a connection whose bytes h11 refuses is recorded and aborted.

Bytes and requests are tagged with the example running when they arrived (`Recorder.begin`).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h11

from e2e.backends import Backend


@dataclass
class Forwarded:
    """A request as the backend received it."""

    example: int
    conn: int
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]  # names lowercased by h11
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = False
    start: int = 0  # offsets of the message in its connection's bytes
    end: int = 0

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]


@dataclass
class Received:
    """One backend connection."""

    id: int
    chunks: list[tuple[int, bytes]] = field(default_factory=list)  # (example, bytes)
    buf: bytearray = field(default_factory=bytearray)  # all of them
    error: str | None = None  # h11 refused the bytes (or a strict check did)
    error_example: int = -1
    truncated: bool = False  # closed in the middle of a request
    leftover: bytes = b""  # bytes after the last whole message when the connection ended
    closed: bool = False
    current: Forwarded | None = None  # the request being received
    writer: asyncio.StreamWriter | None = None

    def raw_in(self, example: int) -> bytes:
        return b"".join(data for ex, data in self.chunks if ex == example)

    @property
    def clean(self) -> bool:
        """Open, between requests, nothing refused: safe for Bascule to reuse."""
        return not self.closed and self.error is None and self.current is None


class Recorder:
    def __init__(self) -> None:
        self.example = 0
        self.conns: list[Received] = []
        self.requests: list[Forwarded] = []

    async def handle(
        self, backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        rec = Received(len(self.conns), writer=writer)
        self.conns.append(rec)
        conn = h11.Connection(h11.SERVER)
        fed = 0
        start = 0
        try:
            while True:
                data = await reader.read(65536)
                if data:
                    rec.chunks.append((self.example, data))
                    rec.buf += data
                    fed += len(data)
                if rec.error is not None:
                    if not data:
                        return
                    continue
                conn.receive_data(data)
                try:
                    while True:
                        event = conn.next_event()
                        at = fed - len(conn.trailing_data[0])
                        if event is h11.NEED_DATA or event is h11.PAUSED:
                            break
                        if isinstance(event, h11.ConnectionClosed):
                            return
                        if isinstance(event, h11.Request):
                            rec.current = Forwarded(
                                self.example,
                                rec.id,
                                event.method,
                                event.target,
                                event.http_version,
                                list(event.headers),
                                start=start,
                            )
                            self.requests.append(rec.current)
                            problem = strict_problems(bytes(rec.buf[start:at]), head_only=True)
                            if problem:
                                raise h11.RemoteProtocolError(problem)
                        elif isinstance(event, h11.Data):
                            assert rec.current is not None
                            rec.current.body += event.data
                        elif isinstance(event, h11.EndOfMessage):
                            request = rec.current
                            assert request is not None
                            request.trailers = list(event.headers)
                            request.end = at
                            problem = strict_problems(bytes(rec.buf[start:at]))
                            if problem:
                                raise h11.RemoteProtocolError(problem)
                            request.complete = True
                            rec.current = None
                            start = at
                            writer.write(respond(conn, request.target))
                            await writer.drain()
                            if conn.our_state is h11.MUST_CLOSE:
                                return
                            conn.start_next_cycle()
                except h11.ProtocolError as exc:  # h11 raises LocalProtocolError on some input
                    leftover = bytes(conn.trailing_data[0])
                    if not data and rec.current is not None and not rec.current.complete:
                        rec.truncated = True
                    elif not data and leftover:
                        rec.leftover = leftover
                    else:
                        rec.error = f"{type(exc).__name__}: {exc}"
                        rec.error_example = self.example
                        writer.transport.abort()
                    return
                if not data:
                    return
        finally:
            rec.closed = True


def respond(conn: h11.Connection, target: bytes) -> bytes:
    """A 200 naming the target the request arrived with."""
    out = conn.send(h11.Response(status_code=200, headers=[("Content-Length", str(len(target)))]))
    assert out is not None
    out += conn.send(h11.Data(data=target)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    return out


# -- the strict grammar h11 does not enforce ------------------------------------------------

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\x00\r\n]*?)[ \t]*")
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*\r\n"
)


def strict_problems(message: bytes, *, head_only: bool = False) -> str | None:
    """What breaks RFC 9112's strict syntax in one whole message (or its head), else None."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return f"no CRLFCRLF ends the head: {message[:200]!r}"
    head, body = message[: end + 2], message[end + 4 :]
    lines = head.split(b"\r\n")[:-1]
    for line in lines:
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            return f"bare CR, bare LF or NUL in a head line: {line!r}"
    if not re.fullmatch(rb"[A-Za-z!#$%&'*+\-.^_`|~0-9]+ [\x21-\x7e]+ HTTP/1\.[01]", lines[0]):
        return f"malformed request line: {lines[0]!r}"
    for line in lines[1:]:
        if not _FIELD_LINE.fullmatch(line):
            return f"malformed field line (obs-fold?): {line!r}"
    if head_only:
        return None
    if not any(line.lower().startswith(b"transfer-encoding:") for line in lines[1:]):
        return None
    pos = 0
    while True:
        m = _CHUNK_LINE.match(body, pos)
        if m is None:
            return f"malformed chunk-size line at {pos}: {body[pos : pos + 40]!r}"
        size = int(m.group(1), 16)
        pos = m.end()
        if size == 0:
            break
        if body[pos + size : pos + size + 2] != b"\r\n":
            return f"chunk data not followed by CRLF at {pos + size}"
        pos += size + 2
    while True:  # trailer section
        nl = body.find(b"\r\n", pos)
        if nl < 0:
            return "unterminated trailer section"
        line = body[pos:nl]
        pos = nl + 2
        if not line:
            break
        if b"\r" in line or b"\n" in line or not _FIELD_LINE.fullmatch(line):
            return f"malformed trailer line: {line!r}"
    if pos != len(body):
        return f"{len(body) - pos} bytes after the last chunk"
    return None


# -- the client -----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]


@dataclass
class Conversation:
    answers: list[Answer] = field(default_factory=list)
    closed: bool = False  # the proxy closed (EOF or reset) after the answers read
    reset: bool = False
    error: str | None = None  # h11 refused the proxy's responses
    extra: bytes = b""  # bytes after the answers expected, before the close
    raw: bytes = b""


def converse(
    port: int,
    pieces: list[bytes],
    want: int,
    *,
    expect_close: bool,
    timeout: float = 3.0,
    close_wait: float = 1.5,
    check: Callable[[int, Answer], bool] | None = None,
) -> Conversation:
    """Send `pieces` (a short pause between them), then read up to `want` responses, stopping
    at a close, at `timeout`, or as soon as `check(index, answer)` returns False; with
    `expect_close`, then wait up to `close_wait` s for the close."""
    out = Conversation()
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.003)
            try:
                sock.sendall(piece)
            except OSError:
                break  # the proxy closed already: what it answered is still readable
        conn = h11.Connection(h11.CLIENT)
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()
        while len(out.answers) < want:
            if conn.our_state is h11.IDLE:
                conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
                conn.send(h11.EndOfMessage())
            try:
                event = conn.next_event()
            except h11.ProtocolError as exc:
                out.error = f"{type(exc).__name__}: {exc}"
                break
            if event is h11.NEED_DATA:
                data = _recv(sock, deadline, out)
                if data is None:
                    break  # timed out
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status, headers, body = event.status_code, list(event.headers), bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                answer = Answer(status, headers, bytes(body))
                out.answers.append(answer)
                if check is not None and not check(len(out.answers) - 1, answer):
                    return out
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                out.closed = True
                break
        if expect_close and not out.closed and out.error is None:
            out.extra = bytes(conn.trailing_data[0])
            end = time.monotonic() + close_wait
            while (data := _recv(sock, end, out)) is not None:
                if not data:
                    out.closed = True
                    break
                out.extra += data
    return out


def _recv(sock: socket.socket, deadline: float, out: Conversation) -> bytes | None:
    """The next bytes (b"" at a close or reset), or None if the deadline passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    sock.settimeout(left)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return None
    except ConnectionResetError:
        out.reset = True
        data = b""
    out.raw += data
    if not data:
        out.closed = True
    return data
