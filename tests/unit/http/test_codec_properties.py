"""Properties of the codec: splitting input never changes the events; garbage only ever
raises HttpError, and always finishes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from recorder import request_reader

from bascule.http.errors import HttpError

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda n: n.lower() not in ("content-length", "transfer-encoding", "host")
)
VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=/", max_size=20).map(str.strip)


@st.composite
def requests(draw):
    """One or two valid requests as bytes, with random headers and a CL or chunked body."""
    out = b""
    for _ in range(draw(st.integers(1, 2))):
        headers = draw(st.lists(st.tuples(TOKEN, VALUE), max_size=6))
        body = draw(st.binary(max_size=300))
        lines = [f"{n}: {v}" for n, v in headers]
        if draw(st.booleans()):
            sizes = draw(st.lists(st.integers(1, 50), max_size=5))
            chunks, rest = [], body
            for size in sizes:
                if rest:
                    chunks.append(rest[:size])
                    rest = rest[size:]
            if rest:
                chunks.append(rest)
            framed = b"".join(b"%x;x=1\r\n%b\r\n" % (len(c), c) for c in chunks)
            trailer = draw(st.sampled_from([b"", b"X-T: 1\r\n"]))
            lines.append("Transfer-Encoding: chunked")
            payload = framed + b"0\r\n" + trailer + b"\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
        head = "\r\n".join(["POST /p HTTP/1.1", "Host: h", *lines]) + "\r\n\r\n"
        out += head.encode() + payload
    return out


def run(pieces: list[bytes]):
    """Feed pieces as a server would: leftovers of a finished message are fed next."""
    reader, rec = request_reader(max_header_bytes=64 * 1024)
    for piece in pieces:
        data = piece
        while data:
            rest = reader.feed(data)
            data = rest or b""
    return rec.merged()


@settings(max_examples=300, deadline=None)
@given(data=requests(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_of_valid_requests_gives_the_same_events(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert run(pieces) == run([data])
    assert run([bytes([b]) for b in data]) == run([data])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_random_bytes_raise_only_http_error(pieces):
    reader, _ = request_reader()
    status = 400
    try:
        for piece in pieces:
            data = piece
            for _ in range(1000):  # a feed that keeps handing back bytes would be a hang
                if not data:
                    break
                data = reader.feed(data) or b""
            else:
                raise AssertionError("feed never consumed its input")
    except HttpError as exc:
        status = exc.status
    assert 400 <= status < 600
