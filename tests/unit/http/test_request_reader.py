"""RequestReader as byte transcripts: what goes in, which events come out, what is left."""

from __future__ import annotations

import pytest
from recorder import request_reader

from bascule.http.errors import HttpError


def test_get_without_body_is_head_then_end():
    reader, rec = request_reader()
    assert reader.feed(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert rec.events == [("head", b"GET", b"/a?b=1", "1.1"), ("end",)]
    head = rec.heads[0]
    assert (head.path, head.query, head.host, head.keep_alive) == (b"/a", b"b=1", b"x", True)


def test_head_split_anywhere_waits_for_the_empty_line():
    reader, rec = request_reader()
    assert reader.feed(b"GET / HTTP/1.1\r\nHost: x\r") is None
    assert reader.partial_head
    assert rec.events == []
    assert reader.feed(b"\n\r") is None
    assert reader.feed(b"\n") == b""
    assert rec.events == [("head", b"GET", b"/", "1.1"), ("end",)]


def test_content_length_body_stops_at_its_length():
    reader, rec = request_reader()
    rest = reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET")
    assert rest == b"GET"
    assert rec.merged() == [("head", b"POST", b"/", "1.1"), ("body", b"hello"), ("end",)]
    assert rec.heads[0].content_length == 5


def test_content_length_body_across_feeds():
    reader, rec = request_reader()
    assert reader.feed(b"PUT / HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc") is None
    assert not reader.in_head
    assert reader.feed(b"de") is None
    assert reader.feed(b"fXYZ") == b"XYZ"
    assert reader.in_head
    assert rec.merged()[1:] == [("body", b"abcdef"), ("end",)]


def test_chunked_body_with_extensions_and_trailers():
    reader, rec = request_reader()
    rest = reader.feed(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\n"
        b"A\r\n0123456789\r\n"
        b"0;last\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
        b"NEXT"
    )
    assert rest == b"NEXT"
    assert rec.merged()[1:] == [("body", b"abc0123456789"), ("end",)]
    assert rec.heads[0].chunked


@pytest.mark.parametrize("split", range(1, 5), ids=lambda n: f"terminator-split-{n}")
def test_chunked_terminator_split_across_feeds_ends_the_message_exactly(split):
    reader, rec = request_reader()
    end = b"0\r\n\r\n"
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
    assert reader.feed(head + end[:split]) is None
    assert reader.feed(end[split:] + b"GET /next HTTP/1.1\r\n\r\n") == (
        b"GET /next HTTP/1.1\r\n\r\n"
    )
    assert rec.merged() == [("head", b"POST", b"/", "1.1"), ("body", b"a"), ("end",)]
    assert reader.in_head


def test_pipelined_requests_come_back_one_at_a_time():
    reader, rec = request_reader()
    second = b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    assert reader.feed(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" + second) == second
    assert rec.events == [("head", b"GET", b"/1", "1.1"), ("end",)]
    assert reader.feed(second) == b""
    assert rec.events[2:] == [("head", b"GET", b"/2", "1.1"), ("end",)]


@pytest.mark.parametrize(
    ("connection", "keep_alive"), [(b"", False), (b"Connection: Keep-Alive\r\n", True)]
)
def test_http10_keep_alive_only_when_asked(connection, keep_alive):
    reader, rec = request_reader()
    reader.feed(b"GET / HTTP/1.0\r\n" + connection + b"\r\n")
    assert rec.heads[0].keep_alive is keep_alive


def test_connection_close_ends_keep_alive_on_http11():
    reader, rec = request_reader()
    reader.feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert rec.heads[0].keep_alive is False


def test_expect_continue_and_upgrade_are_recognised():
    reader, rec = request_reader()
    reader.feed(b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx")
    reader.feed(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert rec.heads[0].expect_continue
    assert rec.heads[1].wants_upgrade
    assert rec.heads[1].upgrade == b"websocket"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"NONSENSE\r\n\r\n", 400, id="no-request-line"),
        pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", 400, id="bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, id="bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, id="nul"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", 400, id="space-in-name"),
        pytest.param(
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            id="cl-and-te",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            id="differing-cl",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, id="cl-not-digits"),
        pytest.param(
            b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, id="te-not-chunked"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
            id="chunked-not-last",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, id="bad-chunk-size"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
            400,
            id="chunk-longer-than-size",
        ),
        pytest.param(b"GET / HTTP/0.9\r\n\r\n", 505, id="http-0.9"),
        pytest.param(b"GET /" + b"u" * 2000 + b" HTTP/1.1\r\n\r\n", 414, id="uri-too-long"),
        pytest.param(b"GET /" + b"u" * 5000, 414, id="uri-too-long-unfinished"),
        pytest.param(b"GET / HTTP/1.1\r\nX: " + b"h" * 5000 + b"\r\n\r\n", 431, id="head-too-big"),
        pytest.param(b"GET / HTTP/1.1\r\nX: " + b"h" * 5000, 431, id="head-too-big-unfinished"),
    ],
)
def test_rejection_carries_its_status(data, status):
    reader, rec = request_reader(max_header_bytes=4096, max_uri_bytes=1024)
    with pytest.raises(HttpError) as raised:
        reader.feed(data)
    assert raised.value.status == status
    assert ("end",) not in rec.events


def test_garbage_is_refused_before_the_head_ends():
    reader, _ = request_reader()
    with pytest.raises(HttpError) as raised:
        reader.feed(b"\x16\x03\x01\x02\x00\x01")  # a TLS ClientHello on the plain port
    assert raised.value.status == 400
