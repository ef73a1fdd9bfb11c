"""ResponseReader as byte transcripts: framing, HEAD, 1xx, upgrades and read-until-close."""

from __future__ import annotations

import pytest
from recorder import response_reader

from bascule.http.errors import HttpError


def read(data: bytes, *, head_request: bool = False):
    reader, rec = response_reader()
    if head_request:
        reader.expect_head_response()
    return reader.feed(data), rec, reader


def test_content_length_response_and_leftover():
    rest, rec, _ = read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    assert rest == b"EXTRA"
    assert rec.merged() == [("head", 200), ("body", b"ok"), ("end",)]


def test_chunked_response_with_extensions_and_trailers():
    rest, rec, _ = read(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n"
    )
    assert rest == b""
    assert rec.merged() == [("head", 200), ("body", b"wikipedia"), ("end",)]
    assert rec.heads[0].chunked


def test_chunked_response_split_inside_the_final_crlfcrlf():
    reader, rec = response_reader()
    assert (
        reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r")
        is None
    )
    assert ("end",) not in rec.events
    assert reader.feed(b"\nNEXT") == b"NEXT"
    assert rec.merged()[-1] == ("end",)


def test_head_response_has_no_body_whatever_its_length_says():
    reader, rec = response_reader()
    reader.expect_head_response()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n") == b""
    # no call: the next response on the connection parses normally again by itself
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz") == b""
    assert rec.events == [("head", 200), ("end",), ("head", 200), ("body", b"z"), ("end",)]
    assert rec.heads[0].content_length == 10


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_end_after_the_head(status):
    rest, rec, _ = read(b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\nNEXT" % status)
    assert rest == b"NEXT"
    assert rec.events == [("head", status), ("end",)]


def test_interim_responses_come_before_the_final_one():
    rest, rec, _ = read(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    assert rest == b""
    assert rec.merged() == [("info", 100), ("info", 103), ("head", 200), ("body", b"ok"), ("end",)]


def test_101_hands_back_the_bytes_after_the_head():
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    rest, rec, reader = read(head + b"\x81\x02hi")
    assert rest == b"\x81\x02hi"
    assert reader.upgraded_at == len(head)
    assert rec.events == [("head", 101)]
    assert rec.heads[0].upgrade == b"websocket"


def test_response_without_length_ends_at_eof():
    rest, rec, reader = read(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert rest is None
    assert reader.feed(b"def") is None
    assert reader.eof() is True
    assert rec.merged() == [("head", 200), ("body", b"abcdef"), ("end",)]
    assert reader.eof() is False  # only once


def test_eof_inside_a_length_body_does_not_end_it():
    _, rec, reader = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert reader.eof() is False
    assert ("end",) not in rec.events


def test_keep_alive_follows_version_and_connection():
    _, rec, _ = read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    _, rec2, _ = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert rec.heads[0].keep_alive is False
    assert rec2.heads[0].keep_alive is False


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"FOO\r\n\r\n", 400, id="no-status-line"),
        pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", 400, id="bad-status"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            id="cl-and-te",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
            400,
            id="bad-chunk-size",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nX: " + b"h" * 5000, 431, id="head-too-big"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nbody", 502, id="te-unknown"
        ),
        pytest.param(b"\r\rHTTP/1.1 200 OK\r\n\r\n", 400, id="bare-cr-before-status"),
        pytest.param(b"\nHTTP/1.1 200 OK\r\n\r\n", 400, id="bare-lf-before-status"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            502,
            id="te-gzip-chunked",
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            502,
            id="te-on-http-1.0",
        ),
    ],
)
def test_response_rejection_carries_its_status(data, status):
    reader, _ = response_reader(max_header_bytes=4096)
    with pytest.raises(HttpError) as raised:
        reader.feed(data)
    assert raised.value.status == status


@pytest.mark.parametrize("interim", [b"199 X", b"120", b"103 Early Hints"])
def test_an_interim_response_has_no_body_whatever_it_announces(interim):
    """RFC 9110 §15.2: a 1xx ends with its head; what follows is the next response."""
    data = (
        b"HTTP/1.1 " + interim + b"\r\nContent-Length: 2\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    for cut in range(1, len(data)):
        reader, rec = response_reader()
        assert reader.feed(data[:cut]) is None
        assert reader.feed(data[cut:]) == b""
        assert rec.merged() == [
            ("info", int(interim[:3])),
            ("head", 200),
            ("body", b"ok"),
            ("end",),
        ]
