"""Differential: what a client sends through Bascule against what arrives at the backend.

Hypothesis writes byte streams of 1-3 pipelined requests, each valid or (at most one per
stream) broken by one mutation from issue 16's decisions, and sends them split at random
points. A recording backend frames what Bascule forwards with h11 plus a strict byte check
(e2e.recording), never with Bascule's codec. The property:

- the backend's bytes are whole, well-formed requests, nothing refused, nothing left over;
- they are exactly the valid requests before the first invalid one (or before a request
  that closes the connection), in order, each with the client's method, normalized path
  (RFC 3986 remove_dot_segments after decoding percent-encoded unreserved characters),
  Host, extra fields and body byte for byte (chunked bodies decoded, trailers dropped);
- nothing after an invalid request is ever forwarded; of the invalid request itself at most
  a head and part of its body, never completed, on a connection then closed (a streaming
  proxy forwards a head before it sees a broken chunk);
- the client gets a 200 per valid request in order, then the spec's status for the invalid
  one with `Connection: close`, then the close.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from e2e.backends import Backend, BackendLoop
from e2e.proxy import Proxy, config
from e2e.recording import Answer, Conversation, Forwarded, Recorder, converse

MAX_BODY = 64 * 1024
LISTENER = {
    "limits": {"max_body_bytes": "64KiB"},
    "timeouts": {"header": "1s", "body": "1s"},
}

Draw = Callable[[st.SearchStrategy[Any]], Any]

# -- the model: paths ------------------------------------------------------------------------

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _decode_unreserved(path: str) -> str:
    def one(m: re.Match[str]) -> str:
        byte = int(m[1], 16)
        return chr(byte) if byte in _UNRESERVED else m[0]

    return re.sub(r"%([0-9A-Fa-f]{2})", one, path)


def normalize(path: str) -> str | None:
    """RFC 3986 §5.2.4 after decoding unreserved percent-encodings; None if it climbs above
    the root (where remove_dot_segments would silently stop)."""
    inp, out = _decode_unreserved(path), ""
    while inp:
        if inp.startswith("../"):
            inp = inp[3:]
        elif inp.startswith(("./", "/./")):
            inp = inp[2:]
        elif inp == "/.":
            inp = "/"
        elif inp.startswith("/../") or inp == "/..":
            inp = "/" + inp[4:]
            if not out:
                return None
            out = out[: out.rfind("/")]
        elif inp in (".", ".."):
            inp = ""
        else:
            end = inp.find("/", 1)
            end = len(inp) if end < 0 else end
            out, inp = out + inp[:end], inp[end:]
    return out


# -- the model: requests ---------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str  # origin-form path as sent (no query)
    query: str  # "" or "?..."
    version: str
    host: str | None  # None: no Host line
    authority: str | None  # absolute-form: "http://" + authority + path + query
    scheme: str
    fields: list[tuple[bytes, bytes]]  # extra fields (name, value) as meant
    field_lines: list[bytes]  # and as written, OWS and all
    framing: str  # "none", "length", "chunked"
    body: bytes  # as meant (chunk data joined)
    units: list[bytes]  # chunked: "size line + data + CRLF" per chunk
    datas: list[bytes]  # chunked: the data of each unit
    last: bytes  # chunked: last-chunk line, trailers, CRLF
    leading: bytes  # empty lines before the request line
    connection: str | None
    host_at: int
    framing_at: int
    spelling: int = 0  # how Host, Content-Length, Transfer-Encoding are written (field_line)
    cl_zeros: int = 0  # leading zeros of Content-Length (1*DIGIT allows them)

    @property
    def target(self) -> str:
        if self.authority is None:
            return self.path + self.query
        path = "" if self.path == "/" and not self.query and self.scheme == "https" else self.path
        return f"{self.scheme}://{self.authority}{path}{self.query}"

    @property
    def expected_target(self) -> str:
        normalized = normalize(self.path)
        assert normalized is not None
        return normalized + self.query

    @property
    def expected_host(self) -> str | None:
        return self.authority if self.authority is not None else self.host

    @property
    def closes(self) -> bool:
        if self.version == "1.0":
            return self.connection != "keep-alive"
        return self.connection == "close"


@dataclass
class Parts:
    """A request as bytes, in the pieces mutations edit."""

    leading: bytes
    line: bytes  # with its CRLF
    headers: list[bytes]  # each with its CRLF
    body: list[bytes]

    def bytes(self) -> bytes:
        return self.leading + self.line + b"".join(self.headers) + b"\r\n" + b"".join(self.body)


def field_line(name: str, value: bytes, spelling: int) -> bytes:
    """A field line in one of six spellings: name as is, lower or upper case; `: v` or
    `:v` (`:\\tv ` for the last)."""
    written = [name, name.lower(), name.upper()][spelling % 3].encode()
    if not value or spelling < 3:
        return written + (b": " + value if value else b":")
    return written + (b":\t" + value + b" " if spelling == 5 else b":" + value)


def is_field(line: bytes, name: bytes) -> bool:
    return line.lower().startswith(name + b":")


def render(req: Req) -> Parts:
    line = f"{req.method} {req.target} HTTP/{req.version}\r\n".encode()
    headers = list(req.field_lines)
    if req.host is not None:
        host = field_line("Host", req.host.encode("latin-1"), req.spelling)
        headers.insert(min(req.host_at, len(headers)), host)
    at = min(req.framing_at, len(headers))
    if req.framing == "length":
        length = b"0" * req.cl_zeros + b"%d" % len(req.body)
        headers.insert(at, field_line("Content-Length", length, req.spelling))
    elif req.framing == "chunked":
        headers.insert(at, field_line("Transfer-Encoding", b"chunked", req.spelling))
    if req.connection is not None:
        headers.append(b"Connection: " + req.connection.encode())
    headers = [h if h.endswith(b"\r\n") else h + b"\r\n" for h in headers]
    if req.framing == "chunked":
        body = [*req.units, req.last]
    elif req.framing == "length":
        body = [req.body]
    else:
        body = []
    return Parts(req.leading, line, headers, body)


# -- strategies: valid requests ----------------------------------------------------------------

SEGMENTS = [
    "a", "b", "c22", "index.html", ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2E.", "%41",
    "%7e", "%2f", "%2F", "..a", ".a", "a.", "x%20y", "~u", "%C3%A9", "%5F", "-_.~", "a;b=c",
    "%252e", "etc",
]  # fmt: skip
DOTDOTS = ["..", "%2e%2e", ".%2e", "%2E."]
QUERIES = ["", "?q=1", "?x=/../y", "?a=%2e%2e&b=%41", "?p=a/./b"]
HOSTS = [
    "a", "example.com", "localhost:8087", "[::1]:8080", "127.0.0.1", "a_b.test", "x~y",
    "h-1.example:80", "",
]  # fmt: skip
AUTHORITIES = ["h.example", "localhost:8087", "[::1]:8080"]
TCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
VCHARS = TCHARS + "!#$%&'*+.^_`|~\"(),/:;<=>?@[\\]{}"


@st.composite
def valid_paths(draw: Draw) -> str:
    segs: list[str] = draw(st.lists(st.sampled_from(SEGMENTS), max_size=6))
    trailing = "/" if segs and draw(st.booleans()) else ""
    while normalize("/" + "/".join(segs) + trailing) is None:
        segs.insert(0, "a")  # one segment more for every climb: never above the root
    return "/" + "/".join(segs) + trailing


@st.composite
def climbing_paths(draw: Draw) -> str:
    fixed = st.sampled_from(["/..", "/c22/../../etc/passwd", "/%2e%2e/x", "/a/%2E./.."])
    if draw(st.booleans()):
        return str(draw(fixed))
    segs = draw(valid_paths()).strip("/").split("/")
    segs = [s for s in segs if s]
    while normalize("/" + "/".join(segs)) is not None:
        segs.append(draw(st.sampled_from(DOTDOTS)))
    segs += draw(st.lists(st.sampled_from(["etc", "passwd", "x"]), max_size=2))
    return "/" + "/".join(segs)


@st.composite
def field_lines(draw: Draw) -> tuple[tuple[bytes, bytes], bytes]:
    name = "X-Fz-" + draw(st.text(TCHARS, min_size=1, max_size=8))
    value = draw(st.text(VCHARS, max_size=12))
    if len(value) >= 2 and draw(st.booleans()):
        cut = draw(st.integers(1, len(value) - 1))
        value = value[:cut] + draw(st.sampled_from([" ", "\t", "  "])) + value[cut:]
    if value and draw(st.integers(0, 9)) == 0:
        value += "\xe9"  # obs-text: a valid field-vchar
    raw = value.encode("latin-1")
    before = draw(st.sampled_from([b" ", b"", b"\t", b"  "]))
    after = draw(st.sampled_from([b"", b" ", b"\t"]))
    return (name.lower().encode(), raw), name.encode() + b":" + before + raw + after


@st.composite
def size_lines(draw: Draw, size: int) -> bytes:
    digits = format(size, draw(st.sampled_from(["x", "X"])))
    digits = "0" * draw(st.sampled_from([0, 0, 0, 1, 16 - len(digits)])) + digits
    line: bytes = digits.encode()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        bws = st.sampled_from([b"", b"", b" ", b"\t"])
        line += draw(bws) + b";" + draw(bws) + draw(st.sampled_from([b"a", b"ext", b"x-y"]))
        value = draw(
            st.sampled_from([None, b"1", b"tok!en", b'"q v"', b'"q\\"e"', b'""', b'"a;b=c"'])
        )
        if value is not None:
            line += draw(bws) + b"=" + draw(bws) + value
    return line + b"\r\n"


@st.composite
def chunkings(draw: Draw, body: bytes) -> tuple[list[bytes], list[bytes], bytes]:
    """(units, datas, last) for `body` cut at random points."""
    cuts: list[int] = []
    if len(body) > 1:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(body) - 1), max_size=4))))
    bounds = [0, *cuts, len(body)]
    datas = [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    units = [draw(size_lines(len(d))) + d + b"\r\n" for d in datas]
    trailers = draw(
        st.lists(
            st.sampled_from([b"X-Tr: 1\r\n", b"X-Fz-t: v v\r\n", b"Expires: 0\r\n"]), max_size=2
        )
    )
    last = draw(size_lines(0)) + b"".join(trailers) + b"\r\n"
    return units, datas, last


@st.composite
def valid_requests(draw: Draw) -> Req:
    version = draw(st.sampled_from(["1.1", "1.1", "1.1", "1.1", "1.1", "1.0"]))
    host = draw(st.sampled_from(HOSTS))
    if version == "1.0" and draw(st.booleans()):
        host = None
    authority = None
    if host is not None and draw(st.integers(0, 4)) == 0:
        authority = draw(st.sampled_from(AUTHORITIES))
    framings = ["none", "length", "chunked"] if version == "1.1" else ["none", "length"]
    framing = draw(st.sampled_from(framings))
    if framing == "none":
        body = b""
    elif draw(st.integers(0, 15)):
        body = draw(st.binary(max_size=300))
    else:  # at the limit, or just under it
        body = (bytes(range(256)) * 256)[: MAX_BODY - draw(st.integers(0, 2))]
    units, datas, last = draw(chunkings(body)) if framing == "chunked" else ([], [], b"")
    drawn = draw(st.lists(field_lines(), max_size=4))
    if version == "1.0":
        connection = draw(st.sampled_from([None, "keep-alive"]))
    else:
        connection = draw(st.sampled_from([None, None, None, None, None, None, None, "close"]))
    return Req(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"])),
        path=draw(valid_paths()),
        query=draw(st.sampled_from(QUERIES)),
        version=version,
        host=host,
        authority=authority,
        scheme=draw(st.sampled_from(["http", "https"])),
        fields=[f for f, _ in drawn],
        field_lines=[line for _, line in drawn],
        framing=framing,
        body=body,
        units=units,
        datas=datas,
        last=last,
        leading=b"\r\n" * draw(st.sampled_from([0, 0, 0, 1, 2])),
        connection=connection,
        host_at=draw(st.integers(0, 4)),
        framing_at=draw(st.integers(0, 4)),
        spelling=draw(st.integers(0, 5)),
        cl_zeros=draw(st.sampled_from([0, 0, 0, 0, 1, 3])),
    )


# -- strategies: one mutation from the spec ------------------------------------------------


@dataclass
class Refusal:
    status: int
    kind: str
    req: Req
    partial_ok: bool = False  # the head may have gone, and part of the body
    body_prefix: bytes = b""  # the most of the body that may have gone
    mutation: str = ""


def as_11(req: Req) -> Req:
    connection = None if req.connection == "keep-alive" else req.connection
    return replace(req, version="1.1", host="a" if req.host is None else req.host,
                   connection=connection)  # fmt: skip


def as_chunked(draw: Draw, req: Req, version: str = "1.1") -> Req:
    req = as_11(req) if version == "1.1" else replace(req, version=version)
    body = req.body or draw(st.binary(min_size=1, max_size=40))
    units, datas, last = draw(chunkings(body))
    return replace(req, framing="chunked", body=body, units=units, datas=datas, last=last)


def as_length(req: Req) -> Req:
    return replace(req, framing="length")


def two_hosts(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = replace(req, host="a" if req.host is None else req.host)
    parts = render(req)
    other = draw(st.sampled_from([req.host, "b.example", "evil"])).encode("latin-1")
    parts.headers.insert(draw(st.integers(0, len(parts.headers))), b"Host: " + other + b"\r\n")
    return parts, Refusal(400, "two Host lines", req)


def missing_host(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = replace(as_11(req), host=None)
    return render(req), Refusal(400, "HTTP/1.1 without Host", req)


def bad_host(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    bad = draw(st.sampled_from([" ", "\xec", '"', "<", "{", "|", "\\", "^", "`", "/", "?", "#",
                                "@", "\t"]))  # fmt: skip
    left = draw(st.sampled_from(["a", "example", "h:80"]))
    req = replace(req, host=left + bad + draw(st.sampled_from(["b", "x.com", "1"])))
    return render(req), Refusal(400, f"Host with {bad!r}", req)


def cl_and_te(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req)
    parts = render(req)
    length = draw(st.sampled_from([0, 3, len(req.body)]))
    at = draw(st.integers(0, len(parts.headers)))
    parts.headers.insert(at, b"Content-Length: %d\r\n" % length)
    return parts, Refusal(400, "Content-Length and Transfer-Encoding", req)


def duplicate_cl(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_length(req)
    parts = render(req)
    n = len(req.body)
    line = draw(st.sampled_from([b"%d" % n, b"%d" % (n + 1), b"%d, %d" % (n, n)]))
    if line.startswith(b"%d, " % n):
        parts.headers = [h for h in parts.headers if not is_field(h, b"content-length")]
    parts.headers.insert(
        draw(st.integers(0, len(parts.headers))), b"Content-Length: " + line + b"\r\n"
    )
    return parts, Refusal(400, "duplicate Content-Length", req)


def bad_cl(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_length(req)
    parts = render(req)
    value = draw(st.sampled_from([b"-1", b"+5", b"5a", b"0x5", b"", b"1 2"]))
    parts.headers = [
        b"Content-Length: " + value + b"\r\n" if is_field(h, b"content-length") else h
        for h in parts.headers
    ]
    return parts, Refusal(400, f"Content-Length: {value!r}", req)


def cl_over_limit(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_length(req)
    parts = render(req)
    length = MAX_BODY + 1 + draw(st.sampled_from([0, 100, 2**32]))
    parts.headers = [
        b"Content-Length: %d\r\n" % length if is_field(h, b"content-length") else h
        for h in parts.headers
    ]
    return parts, Refusal(413, "Content-Length over the limit", req)


def bad_te(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req)
    parts = render(req)
    value, status = draw(st.sampled_from([
        (b"gzip", 400), (b"gzip, chunked", 501), (b"deflate, chunked", 501),
        (b"chunked, chunked", 400), (b"chunked, gzip", 400), (b"chunked\r\nTransfer-Encoding: "
        b"chunked", 400),
    ]))  # fmt: skip
    parts.headers = [
        b"Transfer-Encoding: " + value + b"\r\n" if is_field(h, b"transfer-encoding") else h
        for h in parts.headers
    ]
    return parts, Refusal(status, f"Transfer-Encoding: {value!r}", req)


def te_on_http10(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req, version="1.0")
    return render(req), Refusal(400, "Transfer-Encoding on HTTP/1.0", req)


def chunk_over_limit(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req)
    parts = render(req)
    k = draw(st.integers(0, len(req.units)))
    sent = sum(len(d) for d in req.datas[:k])
    size = MAX_BODY - sent + 1 + draw(st.sampled_from([0, 4, 0xFFFF, 2**32, 0x100000005]))
    digits = format(size, draw(st.sampled_from(["x", "X"]))).encode()
    parts.body = [*req.units[:k], digits + b"\r\nhello\r\n0\r\n\r\n"]
    return parts, Refusal(413, f"chunk size {digits!r}", req, True, b"".join(req.datas[:k]))


def bad_chunk_line(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req)
    parts = render(req)
    j = draw(st.integers(0, len(req.units)))
    if j < len(req.units):
        unit, size = req.units[j], len(req.datas[j])
        rest = unit[unit.index(b"\r\n") + 2 :]
    else:
        size, rest = 0, req.last[req.last.index(b"\r\n") + 2 :]
    h = format(size, "x").encode()
    line = draw(st.sampled_from([
        h + b"\n", h + b" \r\n", h + b"\t\r\n", b"0" * (17 - len(h)) + h + b"\r\n", b"zz\r\n",
        b"-" + h + b"\r\n", b"0x" + h + b"\r\n", b"+" + h + b"\r\n", b"\r\n", h + b";\r\n",
        h + b";a=\r\n", h + b';a="x\r\n', h + b"\r\r\n", b" " + h + b"\r\n", h + b";a b\r\n",
    ]))  # fmt: skip
    if j < len(req.units):
        parts.body = [*req.units[:j], line + rest, *req.units[j + 1 :], req.last]
    else:
        parts.body = [*req.units, line + rest]
    return parts, Refusal(400, f"chunk line {line!r}", req, True, b"".join(req.datas[:j]))


def chunk_data_too_long(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req)
    parts = render(req)
    j = draw(st.integers(0, len(req.units) - 1))
    extra = draw(st.sampled_from([b"X", b"EXTRA", b"\n", b" \r\n", b"\r\r\n"]))
    unit = req.units[j]
    parts.body = [*req.units[:j], unit[:-2] + extra + b"\r\n", *req.units[j + 1 :], req.last]
    prefix = b"".join(req.datas[: j + 1])
    return parts, Refusal(400, f"chunk data then {extra!r}", req, True, prefix)


def bad_trailer(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = as_chunked(draw, req)
    parts = render(req)
    line = draw(st.sampled_from([
        b"X-T: a\x00b\r\n", b"X-T: a\r\n b\r\n", b"X-T: a\rb\r\n", b"X-T a\r\n",
        b"X-T: a\nX-U: b\r\n", b" X-T: a\r\n",
    ]))  # fmt: skip
    parts.body = [*req.units, b"0\r\n" + line + b"\r\n"]
    return parts, Refusal(400, f"trailer {line!r}", req, True, req.body)


def _insert_field(draw: Draw, parts: Parts, line: bytes) -> None:
    parts.headers.insert(draw(st.integers(0, len(parts.headers))), line)


def bare_cr_lf(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    line = draw(st.sampled_from([
        b"X-Fz-bad: a\rb\r\n", b"X-Fz-bad: a\rX-Fz-c: d\r\n", b"X-Fz-bad: a\nX-Fz-c: d\r\n",
        b"X-Fz-bad: a\nb\r\n", b"X-Fz-bad: a\r\r\n",
    ]))  # fmt: skip
    _insert_field(draw, parts, line)
    return parts, Refusal(400, f"field line {line!r}", req)


def space_before_colon(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    # RFC 9112 §5.1: a server MUST refuse it with 400 (`Transfer-Encoding : chunked`, read
    # by one hop and not by the next, is a classic desync).
    parts = render(as_chunked(draw, req) if draw(st.booleans()) else req)
    if not parts.headers:
        parts.headers.append(b"X-Fz-a: b\r\n")
    i = draw(st.integers(0, len(parts.headers) - 1))
    line = parts.headers[i]
    colon = line.index(b":")
    parts.headers[i] = line[:colon] + draw(st.sampled_from([b" ", b"\t"])) + line[colon:]
    return parts, Refusal(400, f"whitespace before the colon: {parts.headers[i]!r}", req)


def obs_fold(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    if not parts.headers:
        parts.headers.append(b"X-Fz-a: b\r\n")
    at = draw(st.integers(1, len(parts.headers)))
    parts.headers.insert(at, draw(st.sampled_from([b" folded\r\n", b"\tfolded\r\n"])))
    return parts, Refusal(400, "obs-fold", req)


def nul(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    line = draw(st.sampled_from([b"X-Fz-n: a\x00b\r\n", b"X-F\x00z: b\r\n", b"X-Fz-n: \x00\r\n"]))
    _insert_field(draw, parts, line)
    return parts, Refusal(400, f"NUL in {line!r}", req)


def leading_junk(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    junk = draw(st.sampled_from([b"\r", b"\n", b" ", b"\t", b"\r\r\n"]))
    parts.leading += junk
    return parts, Refusal(400, f"{junk!r} before the request line", req)


def request_line_spaces(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    target, version = req.target.encode(), f"HTTP/{req.version}".encode()
    method = req.method.encode()
    parts.line = draw(st.sampled_from([
        method + b"  " + target + b" " + version, method + b" " + target + b"  " + version,
        method + b" " + target + b" " + version + b" ", method + b"\t" + target + b" " + version,
        method + b" " + target + b" " + version.lower(), method + b" " + target + b" HTTP/11",
        method + b" " + target + b" HTTP/1.10",
    ])) + b"\r\n"  # fmt: skip
    return parts, Refusal(400, f"request line {parts.line!r}", req)


def http09(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    parts.line = f"{req.method} {req.target}\r\n".encode()
    return parts, Refusal(400, "an HTTP/0.9 request line", req)


def climbing(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = replace(req, path=draw(climbing_paths()), authority=None)
    return render(req), Refusal(400, f"path {req.path!r} climbs above /", req)


def bad_version(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    version = draw(st.sampled_from(["2.0", "0.9", "1.2", "3.0"]))
    parts.line = f"{req.method} {req.target} HTTP/{version}\r\n".encode()
    return parts, Refusal(505, f"HTTP/{version}", req)


def unknown_method(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    method = draw(st.sampled_from(["FOO", "get", "XYZZY", "Post"]))
    parts = render(req)
    parts.line = f"{method} {req.target} HTTP/{req.version}\r\n".encode()
    return parts, Refusal(501, f"method {method}", req)


def userinfo(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    req = replace(as_11(req), authority=draw(st.sampled_from(["u@h", "u:p@h.example"])))
    return render(req), Refusal(400, "userinfo in the target", req)


def bad_target(draw: Draw, req: Req) -> tuple[Parts, Refusal]:
    parts = render(req)
    target = draw(st.sampled_from(["x/y", "ftp://h/x", "index.html", "?q"]))
    parts.line = f"{req.method} {target} HTTP/{req.version}\r\n".encode()
    return parts, Refusal(400, f"target {target!r}", req)


MUTATIONS: dict[str, Callable[[Draw, Req], tuple[Parts, Refusal]]] = {
    f.__name__: f
    for f in [
        two_hosts, missing_host, bad_host, cl_and_te, duplicate_cl, bad_cl, cl_over_limit,
        bad_te, te_on_http10, chunk_over_limit, bad_chunk_line, chunk_data_too_long,
        bad_trailer, bare_cr_lf, space_before_colon, obs_fold, nul, leading_junk,
        request_line_spaces, http09, climbing, bad_version, unknown_method, userinfo, bad_target,
    ]
}  # fmt: skip


@dataclass
class Case:
    data: bytes
    cuts: list[int]
    forwarded: list[Req]  # the requests the backend must get, in order
    refusal: Refusal | None  # the first invalid request, if the stream reaches it
    closes: bool  # the proxy must close at the end

    def pieces(self) -> list[bytes]:
        bounds = [0, *self.cuts, len(self.data)]
        return [self.data[a:b] for a, b in itertools.pairwise(bounds)]

    def __repr__(self) -> str:
        lines = [f"Case(cuts={self.cuts}, closes={self.closes},"]
        lines += [f"  data={self.data!r},"]
        if self.refusal is not None:
            lines.append(f"  refusal={self.refusal.status} {self.refusal.kind},")
        return "\n".join([*lines, f"  forwarded={[r.expected_target for r in self.forwarded]})"])


@st.composite
def cases(draw: Draw, mutation: str | None) -> Case:
    """1-3 valid requests; with a `mutation`, one of them (any) broken by it."""
    reqs: list[Req] = draw(st.lists(valid_requests(), min_size=1, max_size=3))
    parts = [render(r) for r in reqs]
    bad = -1 if mutation is None else draw(st.integers(0, len(reqs) - 1))
    refusal = None
    if mutation is not None:
        parts[bad], refusal = MUTATIONS[mutation](draw, reqs[bad])
        refusal.mutation = mutation
    forwarded: list[Req] = []
    reached: Refusal | None = None
    closes = False
    for i, req in enumerate(reqs):
        if i == bad:
            reached, closes = refusal, True
            break
        forwarded.append(req)
        if req.closes:
            closes = True
            break
    data = b"".join(p.bytes() for p in parts)
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=3))))
    return Case(data, cuts, forwarded, reached, closes)


# -- running a case --------------------------------------------------------------------------


@dataclass
class Live:
    proxy: Proxy
    recorder: Recorder
    loop: BackendLoop
    address: str  # the backend's host:port


@dataclass
class Seen:
    """What the backend got during one example."""

    requests: list[Forwarded]
    errors: list[tuple[str, bytes]]  # (h11's or the strict check's complaint, the bytes)
    leftovers: list[bytes]
    open_partials: list[Forwarded] = field(default_factory=list)


def begin(live: Live) -> int:
    """A new example: connections an earlier (failed) one left unclean are closed first."""

    async def run() -> int:
        rec = live.recorder
        dirty = [c for c in rec.conns if not c.clean and not c.closed and c.writer is not None]
        for conn in dirty:
            assert conn.writer is not None
            conn.writer.transport.abort()
        if dirty:
            await asyncio.sleep(0.02)
        rec.example += 1
        return rec.example

    return int(live.loop.call(run()))


def seen(live: Live, example: int) -> Seen:
    async def run() -> Seen:
        rec = live.recorder
        requests = [
            replace(r, body=bytearray(r.body)) for r in rec.requests if r.example == example
        ]
        errors = [(c.error, c.raw_in(example)) for c in rec.conns if c.error_example == example]
        touched = [c for c in rec.conns if any(ex == example for ex, _ in c.chunks)]
        leftovers = [c.leftover for c in touched if c.leftover]
        partials = [r for r in requests if not r.complete]
        open_partials = [r for r in partials if not rec.conns[r.conn].closed]
        return Seen(requests, [(e, raw) for e, raw in errors if e], leftovers, open_partials)

    return live.loop.call(run())  # type: ignore[no-any-return]


def settle(live: Live, example: int, wait: float) -> Seen:
    """What the backend got, once late bytes had `wait` s to come and partly forwarded
    requests up to 1 s to see their connection closed."""
    time.sleep(wait)
    deadline = time.monotonic() + 1.0
    while (got := seen(live, example)).open_partials and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


def answered_as_expected(case: Case) -> Callable[[int, Answer], bool]:
    def check(i: int, answer: Answer) -> bool:
        if i < len(case.forwarded):
            want = case.forwarded[i].expected_target.encode()
            return answer.status == 200 and answer.body == want
        return case.refusal is not None and answer.status == case.refusal.status

    return check


def describe(conv: Conversation) -> str:
    return f"answers {[(a.status, a.body[:120]) for a in conv.answers]}, raw {conv.raw[:600]!r}"


def run_case(live: Live, case: Case) -> None:
    example = begin(live)
    want = len(case.forwarded) + (case.refusal is not None)
    conv = converse(
        live.proxy.port,
        case.pieces(),
        want,
        expect_close=case.closes,
        check=answered_as_expected(case),
    )
    got = settle(live, example, 0.01 if case.closes else 0.002)
    complete = [r for r in got.requests if r.complete]
    partial = [r for r in got.requests if not r.complete]
    event(f"refused: {case.refusal.mutation}" if case.refusal else "no refusal")
    if partial:
        event("partly forwarded")

    # the backend: only whole, strictly well-formed requests, and exactly the valid ones
    assert not got.errors, f"the backend could not parse what Bascule sent: {got.errors}"
    assert not got.leftovers, f"bytes left after the last whole request: {got.leftovers}"
    sent = [(r.method, r.target, bytes(r.body)) for r in complete]
    expected = [(r.method.encode(), r.expected_target.encode(), r.body) for r in case.forwarded]
    assert len(complete) <= len(expected), f"forwarded more than the valid requests: {sent}"
    assert [(m, t) for m, t, _ in sent] == [(m, t) for m, t, _ in expected], (
        f"forwarded {sent}, expected {expected}; the client got {describe(conv)}"
    )
    for req, fwd in zip(case.forwarded, complete, strict=True):
        assert bytes(fwd.body) == req.body, f"body {bytes(fwd.body)!r} != sent {req.body!r}"
        assert not fwd.trailers, f"trailers forwarded: {fwd.trailers}"
        assert not (fwd.header(b"content-length") and fwd.header(b"transfer-encoding"))
        # Host as received; an empty or missing one becomes the target's (route.preserve_host)
        host = (req.expected_host or live.address).encode("latin-1")
        assert fwd.header(b"host") == [host], f"Host {fwd.header(b'host')} for {host!r}"
        for name, value in req.fields:
            assert (name, value) in fwd.headers, f"field {name!r}: {value!r} lost: {fwd.headers}"
    if partial:
        refusal = case.refusal
        assert refusal is not None, f"an unfinished request reached the backend: {partial}"
        assert refusal.partial_ok, f"an unfinished {refusal.kind} request was forwarded: {partial}"
        (part,) = partial
        assert (part.method, part.target) == (
            refusal.req.method.encode(),
            refusal.req.expected_target.encode(),
        ), f"partly forwarded {part.method!r} {part.target!r}"
        assert refusal.body_prefix.startswith(bytes(part.body)), (
            f"partly forwarded body {bytes(part.body)!r}, not a prefix of {refusal.body_prefix!r}"
        )
        assert not got.open_partials, "a partly forwarded request's connection stayed open"

    # the client: a 200 per valid request in order, then the refusal, then the close
    assert conv.error is None, f"the proxy's responses do not parse: {conv.error}"
    statuses = [a.status for a in conv.answers]
    assert statuses[: len(case.forwarded)] == [200] * len(case.forwarded), describe(conv)
    bodies = [a.body for a in conv.answers[: len(case.forwarded)]]
    assert bodies == [r.expected_target.encode() for r in case.forwarded], describe(conv)
    if case.refusal is not None:
        assert len(conv.answers) == want, f"no answer to the invalid request: {describe(conv)}"
        refused = conv.answers[-1]
        assert refused.status == case.refusal.status, (
            f"{case.refusal.kind}: {refused.status} {refused.body[:200]!r}"
        )
        assert refused.header(b"connection") == [b"close"], refused.headers
    else:
        assert len(conv.answers) == want, describe(conv)
    if case.closes:
        assert not conv.extra, f"bytes after the last answer: {conv.extra[:300]!r}"
        assert conv.closed, "the connection stayed open"


@pytest.fixture(scope="module")
def live(backend_loop: BackendLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    recorder = Recorder()
    server = backend_loop.start(recorder.handle)
    log = tmp_path_factory.mktemp("differential") / "access.log"
    cfg = config(server, listener=LISTENER)
    proxy = Proxy({**cfg, "access_log": {"path": str(log)}}, log)
    yield Live(proxy, recorder, backend_loop, server.address)
    proxy.stop()
    backend_loop.stop(server)


@settings(max_examples=100, deadline=None)
@given(case=cases(None))
def test_valid_pipelines_reach_the_backend_as_sent(live: Live, case: Case) -> None:
    run_case(live, case)


# One test per mutation: each gets its share of examples, and reports its own minimal case
# (a single test would stop at the first bug found).
@pytest.mark.parametrize("mutation", list(MUTATIONS))
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_nothing_from_an_invalid_request_on_reaches_the_backend(
    live: Live, mutation: str, data: st.DataObject
) -> None:
    run_case(live, data.draw(cases(mutation), label="case"))


# -- the key regressions, pinned -----------------------------------------------------------

CHUNKED_POST = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
def pinned(
    backend: Callable[..., Backend],
    bascule: Callable[[dict[str, Any]], Proxy],
    backend_loop: BackendLoop,
    tmp_path: Path,
) -> Live:
    """Bascule with the default body limit (100MiB) in front of a recording backend."""
    recorder = Recorder()
    server = backend(recorder.handle, raw=True)
    proxy = bascule(config(server, listener={"timeouts": {"header": "1s", "body": "1s"}}))
    return Live(proxy, recorder, backend_loop, server.address)


@pytest.mark.parametrize("then", ["complete", "stall"])
def test_a_chunk_larger_than_what_follows_waits_for_its_data(pinned: Live, then: str) -> None:
    # Item 1: 0x40 = 64 bytes of chunk data, of which "AAAA\r\n\r\n" are the first 8.
    example = begin(pinned)
    with socket.create_connection(("127.0.0.1", pinned.proxy.port), timeout=3) as sock:
        sock.sendall(CHUNKED_POST + b"40\r\nAAAA\r\n\r\n")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # no answer while the body is incomplete
        assert not [r for r in seen(pinned, example).requests if r.complete]
        if then == "complete":
            sock.sendall(b"B" * 56 + b"\r\n0\r\n\r\n")
        sock.settimeout(3)
        answer = sock.recv(65536)
    got = settle(pinned, example, 0.05)
    complete = [r for r in got.requests if r.complete]
    assert not got.errors
    if then == "complete":
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert [bytes(r.body) for r in complete] == [b"AAAA\r\n\r\n" + b"B" * 56]
    else:
        assert answer.startswith(b"HTTP/1.1 408 "), answer  # timeouts.body
        assert not complete
        assert not got.open_partials


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"6400001\r\n" + b"x" * 100, id="just-over-100MiB"),
        pytest.param(b"100000000\r\n", id="4GiB"),
        pytest.param(
            b"100000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            id="smuggled-after",
        ),
    ],
)
def test_a_chunk_size_over_the_limit_is_413_at_once(pinned: Live, body: bytes) -> None:
    # Item 10: 413 as soon as the size line is read (not at the body timeout), and nothing
    # after it is forwarded.
    example = begin(pinned)
    conv = converse(pinned.proxy.port, [CHUNKED_POST + body], 1, expect_close=True, timeout=0.8)
    got = settle(pinned, example, 0.05)
    assert [a.status for a in conv.answers] == [413], describe(conv)
    assert conv.answers[0].header(b"connection") == [b"close"]
    assert conv.closed
    assert not got.errors
    assert not [r for r in got.requests if r.complete], got.requests
    assert not [r for r in got.requests if b"smuggled" in r.target]
    assert not got.open_partials
