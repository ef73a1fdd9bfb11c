"""Issue 16, HTTP/1.1 hardening, end to end: exact client bytes in, both sides checked.

One group of tests per numbered decision of the issue (chunked bodies, Host, upgrades, path
normalization, leading empty lines, target Transfer-Encoding, cached hop-by-hop headers,
absolute-form, TRACE, chunk sizes over the body limit, request lines, request framing). Each
goes through a real Bascule in front of a real backend on 127.0.0.1, written with raw
sockets (`Wire`) so the exact bytes under test go in, and checks what the client got
(status; for a refusal `Connection: close` and the connection closed; a complete body) and
what the backend got (its own record of the exact bytes where framing matters).

Refusals are answered by Bascule and close the connection; nothing complete reaches the
backend for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

import pytest

from e2e.backends import Backend, echo
from e2e.cache_support import Origin, cache_status, get
from e2e.proxy import config
from e2e.wire import Response, Wire

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED_HEAD = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
SMALL_LIMITS = {"max_body_bytes": "1KiB"}


# -- backends that keep the exact bytes --------------------------------------------------------


@dataclass
class Seen:
    """One request as the backend received it: its head and its body, framing included."""

    head: bytes
    body: bytes = b""
    done: bool = False  # its framing ended: the backend holds a complete request

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header `name` (lower-case), in order."""
        return [v for k, v in fields(self.head) if k == name]


def fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """A raw head's header lines as (lower-case name, value)."""
    lines = head.split(b"\r\n")[1:]
    pairs = []
    for line in lines:
        if line:
            name, _, value = line.partition(b":")
            pairs.append((name.lower(), value.strip()))
    return pairs


class Recorder:
    """A raw backend: records every request's exact bytes (a lenient reader of its own),
    answers `answer` once a request's framing has ended, then reads the next request."""

    def __init__(self, answer: bytes = OK) -> None:
        self.answer = answer
        self.seen: list[Seen] = []

    async def __call__(
        self, backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            seen = Seen(head)
            self.seen.append(seen)
            try:
                await self._read_body(reader, seen)
            except ValueError:
                return  # not chunked framing: the bytes are kept for the test to show
            seen.done = True
            writer.write(self.answer)
            await writer.drain()

    async def _read_body(self, reader: asyncio.StreamReader, seen: Seen) -> None:
        async def until(separator: bytes) -> bytes:
            try:
                data = await reader.readuntil(separator)
            except asyncio.IncompleteReadError as cut:
                seen.body += cut.partial
                raise
            seen.body += data
            return data

        async def exactly(n: int) -> None:
            try:
                data = await reader.readexactly(n)
            except asyncio.IncompleteReadError as cut:
                seen.body += cut.partial
                raise
            seen.body += data

        if b"chunked" in b",".join(seen.values(b"transfer-encoding")).lower():
            while True:
                line = await until(b"\r\n")
                size = int(line.split(b";")[0].strip() or b"x", 16)  # ValueError: not chunked
                if size == 0:
                    while await until(b"\r\n") != b"\r\n":
                        pass  # trailer fields
                    return
                await exactly(size + 2)
        elif lengths := seen.values(b"content-length"):
            await exactly(int(lengths[0]))


class Switcher:
    """A raw backend that answers 101 to any request (upgrade asked or not), then echoes
    what comes through the tunnel until the proxy closes."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []

    async def __call__(
        self, backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        self.heads.append(head)
        asked = [v for k, v in fields(head) if k == b"upgrade"]
        protocol = asked[0] if asked else b"h2c"
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %b\r\n\r\n"
            % protocol
        )
        await writer.drain()
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class Scripted:
    """A raw backend that reads one request head per connection, answers `response` as is,
    and closes (so a close-delimited body ends there)."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.heads: list[bytes] = []

    async def __call__(
        self, backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        self.heads.append(head)
        writer.write(self.response)
        await writer.drain()


def dechunk(raw: bytes) -> list[bytes]:
    """The chunks of a chunked body as Bascule must send it upstream: every size line bare
    hex digits and CRLF (no extensions), data then CRLF, the last-chunk `0` then the empty
    line, no trailer fields, and nothing after."""
    chunks = []
    pos = 0
    while True:
        line = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n").match(raw, pos)
        assert line is not None, f"not a bare size line at {pos}: {raw[pos : pos + 24]!r}"
        size = int(line.group(1), 16)
        pos = line.end()
        if size == 0:
            assert raw[pos:] == b"\r\n", f"after the last-chunk: {raw[pos:]!r}"
            return chunks
        chunks.append(raw[pos : pos + size])
        pos += size
        assert raw[pos : pos + 2] == b"\r\n", f"chunk data not followed by CRLF at {pos}"
        pos += 2


# -- the client side ------------------------------------------------------------------------


def nodelay(wire: Wire) -> Wire:
    """Every send() its own segment, so the proxy reads the pieces apart."""
    wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return wire


def refused(port: int, data: bytes, *, within: float = 2.0) -> Response:
    """Send `data`; Bascule must answer once, with `Connection: close` and a complete body,
    then close the connection with nothing after the answer (no second response)."""
    with Wire(port, timeout=within) as wire:
        wire.send(data)
        response = wire.read_response()
        after = leftover(wire)
    assert response.header("connection") == "close", response.headers
    assert response.complete
    assert after == b"", f"bytes after the refusal: {after[:200]!r}"
    return response


def leftover(wire: Wire) -> bytes:
    """What comes after the response until the close; fails if the connection stays open."""
    try:
        return wire.file.read()
    except ConnectionResetError:
        return b""
    except TimeoutError:
        pytest.fail("the connection stayed open after a refusal")


def no_response_within(wire: Wire, seconds: float) -> bool:
    """True if the proxy sends nothing (and does not close) for `seconds`."""
    wire.sock.settimeout(seconds)
    try:
        got = wire.sock.recv(65536, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        wire.sock.settimeout(5)
    assert got == b"", f"an answer before the body was complete: {got[:200]!r}"
    return False  # closed


def complete(recorder: Recorder) -> list[Seen]:
    return [s for s in recorder.seen if s.done]


@pytest.fixture
def recorded(backend, bascule):
    """`recorded(**config_kwargs)` -> (proxy, recorder): Bascule in front of a Recorder."""

    def start(answer: bytes = OK, **kwargs: Any) -> tuple[Any, Recorder]:
        recorder = Recorder(answer)
        server = backend(recorder, raw=True)
        return bascule(config(server, **kwargs)), recorder

    return start


# -- 1. chunked request bodies: a strict decoder, re-chunked upstream --------------------------

TAIL = b"B" * 56  # the spec's 64-byte chunk: b"AAAA\r\n\r\n" then 56 bytes


def test_chunk_open_across_crlfcrlf_read_boundary_is_not_ended_early(recorded):
    proxy, recorder = recorded()
    with nodelay(Wire(proxy.port)) as wire:
        wire.send(CHUNKED_HEAD + b"40\r\nAAAA\r\n\r\n")
        assert no_response_within(wire, 0.4), "the proxy closed with the chunk still open"
        assert complete(recorder) == [], "the backend got a complete request before the body"
        wire.send(TAIL + b"\r\n0\r\n\r\n")
        response = wire.read_response()
    assert (response.status, response.body) == (200, b"ok")
    [seen] = recorder.seen
    assert seen.done
    assert seen.request_line == b"POST /upload HTTP/1.1"
    assert seen.values(b"transfer-encoding") == [b"chunked"]
    assert seen.values(b"content-length") == []
    assert b"".join(dechunk(seen.body)) == b"AAAA\r\n\r\n" + TAIL


def test_chunked_body_sent_at_once_reaches_the_backend_as_sent(recorded):
    proxy, recorder = recorded()
    body = b"40\r\nAAAA\r\n\r\n" + TAIL + b"\r\n0\r\n\r\n"
    with Wire(proxy.port) as wire:
        response = wire.request(CHUNKED_HEAD + body)
    assert response.status == 200
    [seen] = recorder.seen
    assert seen.body == body


def test_incomplete_chunk_is_408_after_the_body_timeout_and_never_forwarded_complete(
    recorded,
):
    proxy, recorder = recorded(listener={"timeouts": {"body": "300ms"}})
    started = time.monotonic()
    response = refused(proxy.port, CHUNKED_HEAD + b"40\r\nAAAA\r\n\r\n", within=3)
    assert response.status == 408
    assert 0.25 < time.monotonic() - started < 2
    assert complete(recorder) == []


# A chunked POST (a chunk extension, a trailer) whose chunk holds what a lenient codec takes
# for the end of the body and a second request, then a pipelined request of its own: split at
# every byte, each split on its own connection, the backend must get the same body (bare
# size lines, no trailer) and the same second request every time.
TRAP = b"AAAA\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n" + b"x" * 16
assert len(TRAP) == 0x40
PIPELINED = (
    CHUNKED_HEAD
    + b'40;e="v"\r\n'
    + TRAP
    + b"\r\n0\r\nX-T: 1\r\n\r\n"
    + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
)


def exchange_in_pieces(port: int, pieces: list[bytes]) -> list[Response]:
    with nodelay(Wire(port, timeout=2)) as wire:
        for piece in pieces:
            wire.send(piece)
            time.sleep(0.002)
        return [wire.read_response(), wire.read_response()]


def check_pipelined(recorder: Recorder, before: int, responses: list[Response]) -> str | None:
    """What went wrong with one PIPELINED exchange, or None."""
    statuses = [r.status for r in responses]
    got = recorder.seen[before:]
    lines = [s.request_line for s in got]
    if statuses != [200, 200] or lines != [b"POST /upload HTTP/1.1", b"GET /next HTTP/1.1"]:
        return f"client got {statuses}, backend got {lines}"
    try:
        data = b"".join(dechunk(got[0].body))
    except AssertionError as error:
        return f"bad upstream framing {got[0].body!r}: {error}"
    if data != TRAP:
        return f"backend got chunk data {data!r}"
    if (
        got[1].body != b""
        or got[1].values(b"transfer-encoding")
        or got[1].values(b"content-length")
    ):
        return f"the pipelined GET got a body: {got[1].head!r} {got[1].body!r}"
    return None


def test_chunked_body_split_at_every_byte_reaches_the_backend_identical(recorded):
    proxy, recorder = recorded()
    failures = []
    for split in range(1, len(PIPELINED)):
        before = len(recorder.seen)
        try:
            responses = exchange_in_pieces(proxy.port, [PIPELINED[:split], PIPELINED[split:]])
        except (TimeoutError, ConnectionError, ValueError, IndexError) as error:
            failures.append((split, PIPELINED[:split][-12:], f"client: {error!r}"))
        else:
            if (problem := check_pipelined(recorder, before, responses)) is not None:
                failures.append((split, PIPELINED[:split][-12:], problem))
        if len(failures) >= 5:
            break
    assert failures == [], "split at (offset, the bytes before it): problem\n" + "\n".join(
        map(repr, failures)
    )


def test_chunked_body_sent_byte_by_byte_reaches_the_backend_identical(recorded):
    proxy, recorder = recorded()
    pieces = [PIPELINED[i : i + 1] for i in range(len(PIPELINED))]
    responses = exchange_in_pieces(proxy.port, pieces)
    assert check_pipelined(recorder, 0, responses) is None


@pytest.mark.parametrize(
    "size_line",
    [
        pytest.param(b"5;name\r\n", id="extension"),
        pytest.param(b"5 ; name = value \t; other\r\n", id="extensions-with-bws"),
        pytest.param(b'5;name="quoted \\" ;value"\r\n', id="quoted-extension"),
        pytest.param(b"0000000000000005\r\n", id="16-hex-digits"),
    ],
)
def test_valid_chunk_size_line_is_accepted_and_re_chunked_bare(recorded, size_line):
    proxy, recorder = recorded()
    with Wire(proxy.port) as wire:
        response = wire.request(CHUNKED_HEAD + size_line + b"hello\r\n0\r\n\r\n")
    assert response.status == 200
    [seen] = recorder.seen
    assert dechunk(seen.body) == [b"hello"]


def test_trailer_fields_are_checked_and_dropped(recorded):
    proxy, recorder = recorded()
    with Wire(proxy.port) as wire:
        response = wire.request(
            CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
        )
    assert response.status == 200
    [seen] = recorder.seen
    assert seen.body == b"5\r\nhello\r\n0\r\n\r\n"  # no trailer forwarded
    assert seen.values(b"trailer") == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"5\nhello\r\n0\r\n\r\n", id="bare-lf-after-size"),
        pytest.param(b"5 \r\nhello\r\n0\r\n\r\n", id="space-after-size-without-semicolon"),
        pytest.param(b" 5\r\nhello\r\n0\r\n\r\n", id="space-before-size"),
        pytest.param(b"00000000000000005\r\nhello\r\n0\r\n\r\n", id="17-hex-digits"),
        pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", id="0x-prefix"),
        pytest.param(b"+5\r\nhello\r\n0\r\n\r\n", id="plus-sign"),
        pytest.param(b"5g\r\nhello\r\n0\r\n\r\n", id="junk-after-digits"),
        pytest.param(b"\r\nhello\r\n0\r\n\r\n", id="empty-size-line"),
        pytest.param(b"5;\r\nhello\r\n0\r\n\r\n", id="semicolon-without-name"),
        pytest.param(b"5;a=\r\nhello\r\n0\r\n\r\n", id="equals-without-value"),
        pytest.param(b"5;a b\r\nhello\r\n0\r\n\r\n", id="space-inside-extension"),
        pytest.param(b"5\rhello\r\n0\r\n\r\n", id="bare-cr-after-size"),
        pytest.param(b"5\r\nhelloXY0\r\n\r\n", id="data-longer-than-size"),
        pytest.param(b"5\r\nhello\n0\r\n\r\n", id="bare-lf-after-data"),
        pytest.param(b"5\r\nhello\r\n0\n\r\n", id="bare-lf-after-last-chunk"),
        pytest.param(b"5\r\nhello\r\n0\r\nX T: 1\r\n\r\n", id="bad-trailer-name"),
        pytest.param(b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n", id="bare-cr-in-trailer"),
        pytest.param(b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n", id="nul-in-trailer"),
    ],
)
def test_malformed_chunked_body_is_400_and_nothing_complete_forwarded(recorded, body):
    proxy, recorder = recorded()
    response = refused(proxy.port, CHUNKED_HEAD + body)
    assert response.status == 400
    time.sleep(0.05)  # anything the proxy let through has reached the backend by now
    assert complete(recorder) == []


# -- 2. Host -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", id="two-equal-hosts"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", id="http11-without-host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", id="space"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: \xec\r\n\r\n", id="byte-0xec"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", id="slash"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", id="at-sign"),
        pytest.param(b'GET / HTTP/1.1\r\nHost: a"b\r\n\r\n', id="double-quote"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", id="tab"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a{b}\r\n\r\n", id="braces"),
    ],
)
def test_bad_or_missing_host_is_400_and_not_forwarded(recorded, head):
    proxy, recorder = recorded()
    assert refused(proxy.port, head).status == 400
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("head", "host"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b"", id="empty-host"),
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", None, id="http10-without-host"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a-b.c_d~!$&'()*+,;=%41:80\r\n\r\n",
            b"a-b.c_d~!$&'()*+,;=%41:80",
            id="every-allowed-character",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", b"[::1]:8080", id="ipv6"),
    ],
)
def test_acceptable_host_is_forwarded(recorded, head, host):
    proxy, recorder = recorded()
    with Wire(proxy.port) as wire:
        wire.send(head)
        response = wire.read_response()
    assert response.status == 200
    [seen] = recorder.seen
    if host:  # empty or absent: what goes upstream is not decided, but only one Host
        assert seen.values(b"host") == [host]
    else:
        assert len(seen.values(b"host")) <= 1


# -- 3. upgrades: only the route's allowed protocols --------------------------------------------

H2C = (
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
)
WEBSOCKET_HEADERS = (
    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def switched(backend, bascule, **route: Any) -> tuple[Any, Switcher]:
    switcher = Switcher()
    server = backend(switcher, raw=True)
    return bascule(config(server, route=route or None)), switcher


def assert_plain(head: bytes) -> None:
    """The backend got `head` without any sign of an upgrade."""
    names = {name for name, _ in fields(head)}
    assert b"upgrade" not in names, head
    assert b"http2-settings" not in names, head
    connection = b",".join(v for k, v in fields(head) if k == b"connection").lower()
    assert b"upgrade" not in connection, head
    assert b"http2-settings" not in connection, head


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(H2C, id="h2c"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket, h2c\r\n"
            + WEBSOCKET_HEADERS
            + b"\r\n",
            id="websocket-and-h2c",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo/1.0\r\nConnection: upgrade\r\n\r\n",
            id="unknown-protocol",
        ),
        pytest.param(
            b"GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\n" + WEBSOCKET_HEADERS + b"\r\n",
            id="websocket-on-http10",
        ),
    ],
)
def test_upgrade_not_allowed_is_forwarded_plain_and_a_101_answer_is_502(
    backend, bascule, request_bytes
):
    proxy, switcher = switched(backend, bascule)
    with Wire(proxy.port) as wire:
        wire.send(request_bytes)
        try:
            response: Response | Exception = wire.read_response()
        except (ConnectionError, TimeoutError) as error:
            response = error
    [head] = switcher.heads
    assert_plain(head)
    assert isinstance(response, Response), f"no answer: {response!r}"
    assert (response.status, response.complete) == (502, True)


def test_upgrade_not_allowed_reaches_a_backend_that_answers_plainly(backend, bascule):
    server = backend(echo)
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        response = wire.request(H2C)
        again = wire.request(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")  # still HTTP/1.1
    assert (response.status, again.status) == (200, 200)
    [first, second] = server.requests
    assert first.header("upgrade") is None
    assert first.header("http2-settings") is None
    assert "upgrade" not in (first.header("connection") or "").lower()
    assert second.path == "/again"


@pytest.mark.parametrize(
    ("route", "request_bytes"),
    [
        pytest.param({"upgrades": ["websocket", "h2c"]}, H2C, id="h2c-allowed"),
        pytest.param({"upgrades": ["H2C"]}, H2C, id="names-case-insensitive"),
        pytest.param(
            {},
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket/13\r\n" + WEBSOCKET_HEADERS + b"\r\n",
            id="websocket-by-default-version-ignored",
        ),
    ],
)
def test_allowed_upgrade_is_tunnelled(backend, bascule, route, request_bytes):
    proxy, switcher = switched(backend, bascule, **route)
    with Wire(proxy.port) as wire:
        response = wire.request(request_bytes)
        assert response.status == 101
        wire.send(b"ping through the tunnel")
        assert wire.file.read(23) == b"ping through the tunnel"
    [head] = switcher.heads
    sent = [v.lower() for k, v in fields(request_bytes) if k == b"upgrade"]
    assert [v.lower() for k, v in fields(head) if k == b"upgrade"] == sent
    assert b"upgrade" in b",".join(v for k, v in fields(head) if k == b"connection").lower()


# -- 4. paths normalized before routing and forwarding ------------------------------------------


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        (b"/a/b/../c", "/a/c"),
        (b"/a/./b", "/a/b"),
        (b"/a/%2e%2e/b", "/b"),
        (b"/a/%2E%2E/b", "/b"),
        (b"/a/.%2e/b", "/b"),
        (b"/a/%2e/b", "/a/b"),
        (b"/a/..", "/"),
        (b"/a/.", "/a/"),
        (b"/a//b/../c", "/a//c"),
        (b"/%41%62c/%7euser/%7E", "/Abc/~user/~"),
        (b"/a%2fb/../c", "/c"),  # %2f is not a separator: "a%2fb" is one segment
        (b"/a/%2f/x", "/a/%2f/x"),
        (b"/a%20b/%C3%A9", "/a%20b/%C3%A9"),
        (b"/a/b/../c?x=/../y&z=%2e%41", "/a/c?x=/../y&z=%2e%41"),
    ],
)
def test_path_is_normalized_before_forwarding(backend, bascule, sent, forwarded):
    server = backend(echo)
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET %b HTTP/1.1\r\nHost: a\r\n\r\n" % sent)
    assert response.status == 200
    [request] = server.requests
    assert request.path == forwarded


@pytest.mark.parametrize(
    ("sent", "route"),
    [
        (b"/public/../admin/x", "admin"),
        (b"/%61dmin/x", "admin"),
        (b"/public/%2e%2e/admin/x", "admin"),
        (b"/public/..%2fadmin/x", "rest"),
        (b"/admin%2fx", "rest"),
    ],
)
def test_routes_match_the_normalized_path(backend, bascule, sent, route):
    admin, rest = backend(echo), backend(echo)
    proxy = bascule(
        config(
            routes=[
                {"name": "admin", "match": {"path": "/admin/"}, "upstream": "admin"},
                {"name": "rest", "upstream": "rest"},
            ],
            upstreams={
                "admin": {"targets": [{"address": admin.address}]},
                "rest": {"targets": [{"address": rest.address}]},
            },
        )
    )
    with Wire(proxy.port) as wire:
        assert wire.request(b"GET %b HTTP/1.1\r\nHost: a\r\n\r\n" % sent).status == 200
    assert (len(admin.requests), len(rest.requests)) == ((1, 0) if route == "admin" else (0, 1))


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/..", id="dotdot"),
        pytest.param(b"/../", id="dotdot-slash"),
        pytest.param(b"/c22/../../etc/passwd", id="climb-two"),
        pytest.param(b"/%2e%2e/x", id="encoded-dotdot"),
        pytest.param(b"/.%2E/x", id="half-encoded-dotdot"),
        pytest.param(b"/a/../../b?x=1", id="climb-with-query"),
        pytest.param(b"a/b", id="relative"),
        pytest.param(b"%2e%2e/x", id="relative-encoded"),
        pytest.param(b"?x=1", id="query-only"),
        pytest.param(b"ftp://a/b", id="ftp-scheme"),
        pytest.param(b"a:80", id="authority-form"),
    ],
)
def test_path_above_root_or_target_of_no_known_form_is_400(recorded, target):
    proxy, recorder = recorded()
    assert refused(proxy.port, b"GET %b HTTP/1.1\r\nHost: a\r\n\r\n" % target).status == 400
    assert recorder.seen == []


# -- 5. empty lines before the request line -----------------------------------------------------


def test_empty_lines_before_request_lines_are_ignored(recorded):
    proxy, recorder = recorded()
    with nodelay(Wire(proxy.port)) as wire:
        first = wire.request(b"\r\n" * 20 + b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        for piece in (b"\r\n", b"\r", b"\n\r", b"\nGE"):  # CRLFs split across reads
            wire.send(piece)
            time.sleep(0.05)
        second = wire.request(b"T /two HTTP/1.1\r\nHost: a\r\n\r\n")
        third = wire.request(b"\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (first.status, second.status, third.status) == (200, 200, 200)
    assert [s.request_line for s in recorder.seen] == [
        b"GET /one HTTP/1.1",
        b"GET /two HTTP/1.1",
        b"GET /three HTTP/1.1",
    ]


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(b"\r", id="bare-cr"),
        pytest.param(b"\n", id="bare-lf"),
        pytest.param(b" ", id="space"),
        pytest.param(b"\t", id="tab"),
        pytest.param(b"\r\n\n", id="crlf-then-bare-lf"),
        pytest.param(b"\x00", id="nul"),
    ],
)
def test_other_bytes_before_the_method_are_400(recorded, prefix):
    proxy, recorder = recorded()
    response = refused(proxy.port, prefix + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert response.status == 400
    assert recorder.seen == []


# -- 6. a target's Transfer-Encoding other than chunked: 502, never stored ----------------------

CACHEABLE = b"Cache-Control: max-age=60\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\n" + CACHEABLE + b"Transfer-Encoding: foo\r\n\r\nhello", id="foo"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n"
            + CACHEABLE
            + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            id="gzip-chunked",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n"
            + CACHEABLE
            + b"Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            id="chunked-twice",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n"
            + CACHEABLE
            + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"5\r\nhello\r\n0\r\n\r\n",
            id="two-chunked-lines",
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\n"
            + CACHEABLE
            + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            id="http10-chunked",
        ),
    ],
)
@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "cache"])
def test_target_transfer_encoding_not_exactly_chunked_is_502_and_never_stored(
    backend, bascule, answer, cached
):
    scripted = Scripted(answer)
    server = backend(scripted, raw=True)
    proxy = bascule(config(server, route={"cache": {}} if cached else None))
    first, second = get(proxy.port), get(proxy.port)
    for response in (first, second):
        assert response.status == 502
        assert response.complete
        assert b"hello" not in response.body
        assert not cache_status(response).startswith("bascule; hit")
    assert len(scripted.heads) == 2  # the second went to the target again


# -- 7. a cached response keeps none of the origin's hop-by-hop headers ------------------------


def test_cache_hit_never_carries_headers_the_origin_connection_named(backend, bascule):
    origin = Origin(
        ("Connection", "X-Secret"),
        ("X-Secret", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Cache-Control", "max-age=60"),
    )
    proxy = bascule(config(backend(origin.respond), route={"cache": {}}))
    miss, hit = get(proxy.port), get(proxy.port)
    assert cache_status(hit).startswith("bascule; hit"), cache_status(hit)
    assert len(origin.seen) == 1
    for response in (miss, hit):
        assert (response.status, response.body) == (200, b"version 1")
        assert not {"x-secret", "keep-alive", "proxy-connection"} & response.names()
        assert "x-secret" not in (response.header("connection") or "").lower()


# -- 8. absolute-form request targets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "host"),
    [
        (b"http://localhost:8087/index.html", "/index.html", "localhost:8087"),
        (b"http://localhost:8087/a/../index.html?q=1", "/index.html?q=1", "localhost:8087"),
        (b"https://example.test/p", "/p", "example.test"),
        (b"http://example.test", "/", "example.test"),
    ],
)
def test_absolute_form_is_forwarded_in_origin_form_with_its_authority_as_host(
    backend, bascule, target, path, host
):
    server = backend(echo)
    proxy = bascule(config(server))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET %b HTTP/1.1\r\nHost: other.test\r\n\r\n" % target)
    assert response.status == 200
    [request] = server.requests
    assert (request.method, request.path, request.version) == ("GET", path, "HTTP/1.1")
    assert request.all("host") == [host]


def test_absolute_form_routes_on_its_authority_not_the_host_header(backend, bascule):
    local, rest = backend(echo), backend(echo)
    proxy = bascule(
        config(
            routes=[
                {"name": "local", "match": {"host": "localhost"}, "upstream": "local"},
                {"name": "rest", "upstream": "rest"},
            ],
            upstreams={
                "local": {"targets": [{"address": local.address}]},
                "rest": {"targets": [{"address": rest.address}]},
            },
        )
    )
    with Wire(proxy.port) as wire:
        absolute = b"GET http://localhost:8087/x HTTP/1.1\r\nHost: other.test\r\n\r\n"
        assert wire.request(absolute).status == 200
        assert wire.request(b"GET /y HTTP/1.1\r\nHost: other.test\r\n\r\n").status == 200
    assert [r.path for r in local.requests] == ["/x"]
    assert [r.path for r in rest.requests] == ["/y"]


@pytest.mark.parametrize("target", [b"http://u@example.test/", b"http://u:p@example.test/x"])
def test_absolute_form_with_userinfo_is_400(recorded, target):
    proxy, recorder = recorded()
    request = b"GET %b HTTP/1.1\r\nHost: example.test\r\n\r\n" % target
    assert refused(proxy.port, request).status == 400
    assert recorder.seen == []


# -- 9. TRACE -----------------------------------------------------------------------------------

TRACE = b"TRACE / HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\n\r\n"


def test_trace_is_405_unless_the_route_lists_it(backend, bascule):
    server = backend(echo)
    proxy = bascule(
        config(
            server,
            routes=[
                {"name": "reads", "match": {"methods": ["GET"]}, "upstream": "app"},
                {"name": "rest", "upstream": "app"},
            ],
        )
    )
    with Wire(proxy.port) as wire:
        # a well-formed request the route does not take: answered like a 404, and the
        # connection serves on
        assert wire.request(TRACE).status == 405
        assert wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
    assert [request.method for request in server.requests] == ["GET"]
    assert proxy.log_lines(2)[0]["error_source"] == "downstream"


def test_trace_is_forwarded_by_a_route_that_lists_it(backend, bascule):
    server = backend(echo)
    proxy = bascule(config(server, route={"match": {"methods": ["TRACE"]}}))
    with Wire(proxy.port) as wire:
        response = wire.request(TRACE)
    assert response.status == 200
    [request] = server.requests
    assert (request.method, request.path) == ("TRACE", "/")


# -- 10. a chunk size over the body limit: 413 on its size line --------------------------------


@pytest.mark.parametrize(
    ("limits", "body"),
    [
        pytest.param(SMALL_LIMITS, b"401\r\n", id="one-over-1KiB"),
        pytest.param(SMALL_LIMITS, b"200\r\n" + b"a" * 512 + b"\r\n201\r\n", id="sum-over-1KiB"),
        pytest.param(SMALL_LIMITS, b"ffffffffffffffff\r\n", id="16-digits-huge"),
        pytest.param(None, b"6400001\r\n", id="one-over-100MiB"),
        pytest.param(None, b"100000000\r\n", id="4GiB"),
    ],
)
def test_chunk_size_over_the_body_limit_is_413_before_its_data(recorded, limits, body):
    proxy, recorder = recorded(listener={"limits": limits} if limits else None)
    started = time.monotonic()
    response = refused(proxy.port, CHUNKED_HEAD + body)
    assert response.status == 413
    assert time.monotonic() - started < 1  # no waiting for data, nor for a timeout
    time.sleep(0.05)
    assert complete(recorder) == []


def test_chunk_size_line_over_the_limit_split_across_reads_is_413(recorded):
    proxy, recorder = recorded(listener={"limits": SMALL_LIMITS})
    with nodelay(Wire(proxy.port)) as wire:
        for piece in (CHUNKED_HEAD + b"0", b"4", b"0", b"1", b"\r", b"\n"):
            wire.send(piece)
            time.sleep(0.02)
        response = wire.read_response()
        after = leftover(wire)
    assert (response.status, response.header("connection"), after) == (413, "close", b"")
    assert complete(recorder) == []


def test_oversized_chunk_hiding_a_request_is_413_and_the_request_never_forwarded(recorded):
    proxy, recorder = recorded()
    smuggling = (
        CHUNKED_HEAD + b"100000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert refused(proxy.port, smuggling).status == 413
    time.sleep(0.1)
    assert complete(recorder) == []
    assert not any(b"/smuggled" in s.head for s in recorder.seen)


# -- 11. request lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "status"),
    [
        pytest.param(b"GET  / HTTP/1.1", 400, id="two-spaces-after-method"),
        pytest.param(b"GET /  HTTP/1.1", 400, id="two-spaces-after-target"),
        pytest.param(b"GET / HTTP/1.1 ", 400, id="trailing-space"),
        pytest.param(b"GET\t/ HTTP/1.1", 400, id="tab-separator"),
        pytest.param(b"GET /a b HTTP/1.1", 400, id="space-in-target"),
        pytest.param(b"GET / http/1.1", 400, id="lower-case-protocol"),
        pytest.param(b"GET / HTTP/1.10", 400, id="three-digit-version"),
        pytest.param(b"GET / HTTP/11", 400, id="version-without-dot"),
        pytest.param(b"GET / HTTPS/1.1", 400, id="https-protocol"),
        pytest.param(b"G(T / HTTP/1.1", 400, id="method-not-a-token"),
        pytest.param(b"GET /\nHost:b HTTP/1.1", 400, id="lf-hidden-in-the-target"),
        pytest.param(b"GET / HTTP/2.0", 505, id="http2"),
        pytest.param(b"GET / HTTP/3.0", 505, id="http3"),
        pytest.param(b"GET / HTTP/1.2", 505, id="http12"),
        pytest.param(b"GET / HTTP/0.9", 505, id="http09-written-out"),
        pytest.param(b"FOO / HTTP/1.1", 501, id="unknown-method"),
        pytest.param(b"get / HTTP/1.1", 501, id="lower-case-method"),
    ],
)
def test_request_line_shape_version_and_method(recorded, line, status):
    proxy, recorder = recorded()
    assert refused(proxy.port, line + b"\r\nHost: a\r\n\r\n").status == status
    assert recorder.seen == []


def test_http09_request_is_400_as_soon_as_its_line_ends(recorded):
    proxy, recorder = recorded(listener={"timeouts": {"header": "5s"}})
    started = time.monotonic()
    assert refused(proxy.port, b"GET /x\r\n", within=4).status == 400
    assert time.monotonic() - started < 1
    assert recorder.seen == []


# -- 12. request framing headers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            400,
            id="equal-duplicate-content-length",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
            400,
            id="content-length-list",
        ),
        pytest.param(
            b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            400,
            id="transfer-encoding-on-http10",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            400,
            id="chunked-twice-one-line",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400,
            id="chunked-twice-two-lines",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            501,
            id="gzip-then-chunked",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            501,
            id="gzip-then-chunked-two-lines",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            400,
            id="chunked-not-last",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            400,
            id="gzip-alone",
        ),
    ],
)
def test_request_framing_headers(recorded, head, status):
    proxy, recorder = recorded()
    assert refused(proxy.port, head).status == status
    assert recorder.seen == []


# -- every answer the same however the bytes are split into reads ------------------------------


def split_outcome(port: int, data: bytes, split: int) -> tuple[Any, ...]:
    """Send `data` in two reads cut at `split` (the rest only if no answer came first): the
    status, the Connection header and whether the proxy then closed; or what went wrong."""
    with nodelay(Wire(port, timeout=2)) as wire:
        wire.send(data[:split])
        time.sleep(0.002)
        wire.sock.settimeout(0)
        try:
            answered = bool(wire.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            answered = False
        except OSError:
            answered = True
        wire.sock.settimeout(2)
        if not answered:
            with contextlib.suppress(OSError):  # refused and closed: the answer is still there
                wire.send(data[split:])
        try:
            response = wire.read_response()
        except (OSError, ValueError, IndexError) as error:
            return (f"no answer: {error!r}",)
        if response.header("connection") != "close":
            return (response.status, response.header("connection"))
        try:
            closed = wire.file.read() == b""
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
        return (response.status, "close", "closed" if closed else "left open")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="two-spaces"),
        pytest.param(b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, id="three-digit-version"),
        pytest.param(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="method-not-a-token"),
        pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, id="http2"),
        pytest.param(b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, id="http09-written-out"),
        pytest.param(b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501, id="unknown-method"),
        pytest.param(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 501, id="lower-case-method"),
        pytest.param(b"GET /x\r\n", 400, id="http09"),
        pytest.param(b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="bare-lf-first"),
        pytest.param(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, id="bad-host"),
        pytest.param(b"GET /a/../../x HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="above-root"),
        pytest.param(b"GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="userinfo"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            400,
            id="duplicate-content-length",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
            id="gzip-chunked",
        ),
        pytest.param(CHUNKED_HEAD + b"5 \r\nhello\r\n0\r\n\r\n", 400, id="space-after-size"),
        pytest.param(CHUNKED_HEAD + b"5\r\nhelloX\r\n0\r\n\r\n", 400, id="data-too-long"),
        pytest.param(CHUNKED_HEAD + b"100000005\r\nhello\r\n0\r\n\r\n", 413, id="over-limit"),
    ],
)
def test_refusal_is_the_same_wherever_the_bytes_are_split(recorded, data, status):
    proxy, recorder = recorded()
    outcomes = {split: split_outcome(proxy.port, data, split) for split in range(1, len(data))}
    wrong = {k: v for k, v in outcomes.items() if v != (status, "close", "closed")}
    assert wrong == {}, "split offset: outcome"
    assert complete(recorder) == []


@pytest.mark.parametrize(
    ("data", "line", "host"),
    [
        pytest.param(
            b"GET http://localhost:8087/a/../index.html?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
            b"GET /index.html?q=1 HTTP/1.1",
            b"localhost:8087",
            id="absolute-form",
        ),
        pytest.param(
            b"\r\n\r\nGET /a/%2e%2e/b/%41 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /b/A HTTP/1.1",
            b"a",
            id="empty-lines-and-dot-segments",
        ),
        pytest.param(
            b"GET /x HTTP/1.0\r\n\r\n",
            b"GET /x HTTP/1.1",  # Bascule speaks HTTP/1.1 to targets
            None,
            id="http10-without-host",
        ),
    ],
)
def test_accepted_request_is_forwarded_the_same_wherever_the_bytes_are_split(
    recorded, data, line, host
):
    proxy, recorder = recorded()
    wrong = {}
    for split in range(1, len(data)):
        before = len(recorder.seen)
        outcome = split_outcome(proxy.port, data, split)
        seen = recorder.seen[before:]
        got = [(s.request_line, s.values(b"host")) for s in seen]
        expected = [(line, got[0][1] if host is None and got else [host])]
        if outcome[0] != 200 or got != expected:
            wrong[split] = (outcome, got)
    assert wrong == {}, "split offset: (outcome, what the backend got)"


# -- refusals in the access log ---------------------------------------------------------------


def test_refusals_are_logged_as_downstream_errors(backend, bascule):
    server = backend(echo)
    proxy = bascule(config(server, listener={"limits": SMALL_LIMITS}))
    sent = [
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /../x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (CHUNKED_HEAD + b"401\r\n", 413),
    ]
    for data, status in sent:
        assert refused(proxy.port, data).status == status
    lines = proxy.log_lines(len(sent))
    assert [(line["status"], line["error_source"]) for line in lines] == [
        (status, "downstream") for _, status in sent
    ]
    assert server.requests == []
