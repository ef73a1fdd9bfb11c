"""RequestReader as byte transcripts: what goes in, which events come out, what is left."""

from __future__ import annotations

import pytest
from recorder import every_split, request_reader

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
    rest = reader.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET")
    assert rest == b"GET"
    assert rec.merged() == [("head", b"POST", b"/", "1.1"), ("body", b"hello"), ("end",)]
    assert rec.heads[0].content_length == 5


def test_content_length_body_across_feeds():
    reader, rec = request_reader()
    assert reader.feed(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc") is None
    assert not reader.in_head
    assert reader.feed(b"de") is None
    assert reader.feed(b"fXYZ") == b"XYZ"
    assert reader.in_head
    assert rec.merged()[1:] == [("body", b"abcdef"), ("end",)]


def test_chunked_body_with_extensions_and_trailers():
    reader, rec = request_reader()
    rest = reader.feed(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
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
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
    assert reader.feed(head + end[:split]) is None
    assert reader.feed(end[split:] + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n") == (
        b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
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
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert rec.heads[0].keep_alive is False


def test_expect_continue_and_upgrade_are_recognised():
    reader, rec = request_reader()
    reader.feed(b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx")
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
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


# -- hardening (issue 16): each input whole, cut at every offset, and byte by byte ----------


def feed_all(pieces: list[bytes], **limits: int):
    """Feed as a server does (leftovers of a finished message next); (events, leftover)."""
    reader, rec = request_reader(**limits)
    rest = b""
    for piece in pieces:
        data = rest + piece
        rest = b""
        while data:
            out = reader.feed(data)
            if out is None:
                break
            rec.events.append(("next",))
            data = out
    return rec, reader


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="bare-cr-before-line"),
        pytest.param(b"\r\r\r\r\rGET /c40 HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="crs-before-line"),
        pytest.param(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="bare-lf-before-line"),
        pytest.param(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="space-before-line"),
        pytest.param(b"\r\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="cr-then-crlfs"),
        pytest.param(b"\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="lf-then-crlfs"),
        pytest.param(b"\r\n\r\r\n", 400, id="crlf-then-bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\n\x01" + b"a" * 5000, 400, id="bad-byte-beats-size-limit"),
        pytest.param(
            b"GET /" + b"u" * 5000 + b"\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            414,
            id="line-judged-on-the-bytes-within-the-limit",
        ),
        pytest.param(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="two-spaces"),
        pytest.param(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, id="space-after-version"),
        pytest.param(b"GET /x\r\n", 400, id="http-0.9-at-once"),
        pytest.param(
            b"POST /\nHost:p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nhe\x00\x00",
            400,
            id="lf-inside-the-request-line",
        ),
        pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, id="http-2.0"),
        pytest.param(b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501, id="unknown-method"),
        pytest.param(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 501, id="lower-case-method"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
        pytest.param(b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, id="no-host"),
        pytest.param(b"GET http://a/ HTTP/1.1\r\n\r\n", 400, id="absolute-form-no-host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, id="host-with-space"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: \xec\r\n\r\n", 400, id="host-not-ascii"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, id="host-with-slash"),
        pytest.param(b"GET /.. HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="climbs-above-root"),
        pytest.param(b"GET /c22/../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="passwd"),
        pytest.param(b"GET /a/%2e%2E/%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="escaped"),
        pytest.param(b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="relative-target"),
        pytest.param(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="asterisk-not-options"),
        pytest.param(b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="userinfo"),
        pytest.param(b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="not-http-uri"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            400,
            id="duplicate-equal-cl",
        ),
        pytest.param(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, id="te-on-1.0"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            400,
            id="chunked-twice-one-line",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
            id="chunked-twice-two-lines",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            id="unknown-coding",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6400001\r\n",
            413,
            id="chunk-size-over-limit",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"100000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            413,
            id="chunk-size-smuggling",
        ),
    ],
)
def test_refusal_has_one_status_at_every_split(data, status):
    for pieces in every_split(data):
        with pytest.raises(HttpError) as raised:
            feed_all(pieces, max_body_bytes=100 * 1024 * 1024)
        assert raised.value.status == status, pieces


def test_chunk_open_across_crlfcrlf_is_not_ended_early():
    """A chunk of 64 bytes of which 8 came, ending in CRLFCRLF: the body goes on."""
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n40\r\nAAAA\r\n\r\n"
    for pieces in every_split(data):
        rec, reader = feed_all(pieces)
        assert rec.merged() == [("head", b"POST", b"/", "1.1"), ("body", b"AAAA\r\n\r\n")]
        assert ("body", b"") not in rec.events
        assert not reader.in_head


@pytest.mark.parametrize("pieces", every_split(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"))
def test_empty_lines_before_the_request_line_are_skipped(pieces):
    rec, _ = feed_all(pieces)
    assert rec.events == [("head", b"GET", b"/", "1.1"), ("end",), ("next",)]


@pytest.mark.parametrize(
    ("target", "path", "forwarded"),
    [
        (b"/a/b/../c", b"/a/c", b"/a/c"),
        (b"/a/./b?x=/../y", b"/a/b", b"/a/b?x=/../y"),
        (b"/a/%2e%2E/b", b"/b", b"/b"),
        (b"/a/..", b"/", b"/"),
        (b"/a/.", b"/a/", b"/a/"),
        (b"/%41pi/%7e%2f%20x", b"/Api/~%2f%20x", b"/Api/~%2f%20x"),
        (b"/index.html", b"/index.html", b"/index.html"),
        (b"/a/.hidden/..b", b"/a/.hidden/..b", b"/a/.hidden/..b"),
    ],
)
def test_path_is_normalized_before_anyone_sees_it(target, path, forwarded):
    reader, rec = request_reader()
    assert reader.feed(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n") == b""
    head = rec.heads[0]
    assert (head.path, head.target) == (path, forwarded)


def test_absolute_form_takes_its_host_and_path_from_the_target():
    reader, rec = request_reader()
    reader.feed(b"GET http://localhost:8087/index.html?q HTTP/1.1\r\nHost: other\r\n\r\n")
    head = rec.heads[0]
    assert (head.host, head.path, head.target) == (
        b"localhost:8087",
        b"/index.html",
        b"/index.html?q",
    )
    assert head.absolute_form
    assert head.headers() == [(b"Host", b"other")]  # the block starts after the line received
    reader.feed(b"OPTIONS HTTPS://A.example HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (rec.heads[1].host, rec.heads[1].target) == (b"A.example", b"/")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    ],
    ids=["1.0-without-host", "empty-host", "asterisk-options", "ipv6-host"],
)
def test_accepted_without_a_usual_host_or_path(request_bytes):
    reader, rec = request_reader()
    assert reader.feed(request_bytes) == b""
    assert rec.events[-1] == ("end",)


def test_upgrade_on_http10_is_ignored():
    reader, rec = request_reader()
    reader.feed(b"GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert not rec.heads[0].wants_upgrade
