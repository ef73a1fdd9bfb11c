"""ChunkedBody as byte transcripts: every split of the input gives the same data and end."""

from __future__ import annotations

import pytest
from recorder import every_split

from bascule.http.chunked import MAX_SIZE_LINE, ChunkedBody
from bascule.http.errors import HttpError


def decode(pieces: list[bytes], max_body: int = 1 << 20) -> tuple[bytes, bytes | None, list[bytes]]:
    """(data, the bytes after the body's end or None if it goes on, every piece emitted)."""
    emitted: list[bytes] = []
    body = ChunkedBody(emitted.append, max_body, 1024)
    for i, piece in enumerate(pieces):
        end = body.feed(piece)
        if end >= 0:
            return b"".join(emitted), b"".join([piece[end:], *pieces[i + 1 :]]), emitted
    return b"".join(emitted), None, emitted


BODY = (
    b'4;a=1\r\nWiki\r\n5 ; b = "q\\"x" ;c\r\npedia\r\n'
    b"E\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n"
)


@pytest.mark.parametrize("pieces", every_split(BODY + b"NEXT"), ids=lambda p: str(len(p[0])))
def test_any_split_decodes_the_same_data_and_stops_before_the_next_message(pieces):
    data, rest, emitted = decode(pieces)
    assert (data, rest) == (b"Wikipedia in\r\n\r\nchunks.", b"NEXT")
    assert b"" not in emitted  # an empty piece would end a re-chunked body


@pytest.mark.parametrize("pieces", every_split(b"40\r\nAAAA\r\n\r\n"), ids=lambda p: str(len(p[0])))
def test_crlfcrlf_inside_an_open_chunk_is_data_not_the_end(pieces):
    data, rest, emitted = decode(pieces)
    assert (data, rest) == (b"AAAA\r\n\r\n", None)
    assert b"" not in emitted


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"zz\r\n", 400, id="not-hex"),
        pytest.param(b"5\n", 400, id="bare-lf"),
        pytest.param(b"5 \r\n", 400, id="space-before-crlf"),
        pytest.param(b"5\r\r\n", 400, id="bare-cr"),
        pytest.param(b"11111111111111111\r\n", 400, id="seventeen-digits"),
        pytest.param(b"5;\r\n", 400, id="empty-extension"),
        pytest.param(b'5;a="x\r\n', 400, id="open-quote"),
        pytest.param(b"3\r\nabcd\r\n", 400, id="data-longer-than-size"),
        pytest.param(b"3\r\nabc\n", 400, id="data-then-bare-lf"),
        pytest.param(b"0\r\nX T: 1\r\n\r\n", 400, id="bad-trailer-name"),
        pytest.param(b"0\r\nX: a\x00b\r\n\r\n", 400, id="nul-in-trailer"),
        pytest.param(b"0\r\n \r\n\r\n", 400, id="obs-fold-trailer"),
        pytest.param(b"0\r\nX: " + b"t" * 2000 + b"\r\n\r\n", 431, id="trailers-too-big"),
        pytest.param(b"1" + b"0" * 7 + b"\r\n", 413, id="size-over-limit"),
        pytest.param(b"100000005\r\nhello\r\n0\r\n\r\n", 413, id="smuggling-size"),
        pytest.param(b"5;" + b"x" * MAX_SIZE_LINE + b"\r\n", 400, id="size-line-too-long"),
    ],
)
def test_refusal_carries_its_status_at_any_split(data, status):
    for pieces in every_split(data):
        with pytest.raises(HttpError) as raised:
            decode(pieces, max_body=1 << 20)
        assert raised.value.status == status


def test_oversized_chunk_is_refused_before_its_data():
    emitted: list[bytes] = []
    body = ChunkedBody(emitted.append, 1000, 1024)
    assert body.feed(b"3e8\r\n" + b"a" * 1000 + b"\r\n") == -1  # exactly the limit
    with pytest.raises(HttpError) as raised:
        body.feed(b"1\r\n")
    assert raised.value.status == 413
