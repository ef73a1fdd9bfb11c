"""Write the seed corpus of fuzz_codec.py to tests/fuzz/corpus (run it after changing SEEDS).

Each seed is in the harness's input format: reader kind, number of split points, the split
points (u16 little-endian), then the message (see fuzz_codec.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

REQUEST, RESPONSE, HEAD_RESPONSE = 0, 1, 2
CHUNKED = b"Transfer-Encoding: chunked\r\n"

# name: (reader kind, split points, message)
SEEDS: dict[str, tuple[int, list[int], bytes]] = {
    "get": (REQUEST, [3, 16], b"GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n"),
    "post_content_length": (
        REQUEST,
        [44],
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    ),
    "post_chunked_extensions_trailers": (
        REQUEST,
        [60, 75, 80],
        b"POST /p HTTP/1.1\r\nHost: a\r\n" + CHUNKED + b"\r\n"
        b'5;a=b\r\nhello\r\n3 ; q="x y"\r\nabc\r\n0\r\nX-T: 1\r\n\r\n',
    ),
    "pipelined_get_post": (
        REQUEST,
        [30, 31],
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    "chunk_data_holds_crlfcrlf": (  # the read ends inside the chunk, right after CRLFCRLF
        REQUEST,
        [66],
        b"POST / HTTP/1.1\r\nHost: a\r\n" + CHUNKED + b"\r\n40\r\nAAAA\r\n\r\n",
    ),
    "chunk_size_smuggles": (
        REQUEST,
        [],
        b"POST / HTTP/1.1\r\nHost: a\r\n" + CHUNKED + b"\r\n"
        b"100000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    "chunk_size_bare_lf": (
        REQUEST,
        [],
        b"POST / HTTP/1.1\r\nHost: a\r\n" + CHUNKED + b"\r\n5\nhello\r\n0\r\n\r\n",
    ),
    "content_length_and_chunked": (
        REQUEST,
        [],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n" + CHUNKED + b"\r\n0\r\n\r\n",
    ),
    "duplicate_content_length": (
        REQUEST,
        [],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    ),
    "two_hosts_gzip_chunked": (
        REQUEST,
        [],
        b"POST http://h:8/p HTTP/1.1\r\nHost: a\r\nHost: b\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ),
    "empty_lines_then_bad_lines": (
        REQUEST,
        [2],
        b"\r\n\r\nGET  / HTTP/1.1\r\nHost: a b\r\nX: a\r\n folded\r\nY: \x00\r\r\n\r\n",
    ),
    "http09_and_http10_chunked": (
        REQUEST,
        [],
        b"GET /x\r\nPOST / HTTP/1.0\r\n" + CHUNKED + b"\r\n0\r\n\r\n",
    ),
    "upgrade_then_tunnel": (
        REQUEST,
        [],
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        b"\x81\x05hello",
    ),
    "response_chunked_trailers": (
        RESPONSE,
        [40, 50],
        b"HTTP/1.1 200 OK\r\n" + CHUNKED + b"\r\n4;x=1\r\nwxyz\r\n2\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n",
    ),
    "response_continue_then_ok": (
        RESPONSE,
        [25],
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ),
    "response_until_close_http10_te": (
        RESPONSE,
        [],
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\nrest",
    ),
    "response_204_304_101": (
        RESPONSE,
        [],
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\ntunnel",
    ),
    "lf_inside_request_line": (  # llhttp ends the line at the LF: the rest is a header
        REQUEST,
        [44],
        b"POST /\nHost:p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nhe\x00\x00",
    ),
    "head_responses": (
        HEAD_RESPONSE,
        [39],
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n",
    ),
}


def encode(kind: int, points: list[int], message: bytes) -> bytes:
    return bytes([kind, len(points)]) + b"".join(struct.pack("<H", p) for p in points) + message


def main() -> None:
    corpus = Path(__file__).parent / "corpus"
    corpus.mkdir(exist_ok=True)
    for name, (kind, points, message) in SEEDS.items():
        (corpus / name).write_bytes(encode(kind, points, message))


if __name__ == "__main__":
    main()
