"""The chunked transfer coding (RFC 9112 §7.1), decoded strictly, one body at a time.

httptools decodes chunked bodies too, but it does not say where a body ends inside a buffer
nor how large a chunk is about to be; a proxy needs both, to hand back the bytes of the next
pipelined message and to refuse an oversized chunk before its data arrives. Rules:

1. Data goes out as it arrives, never an empty piece: an empty chunk on the wire is the
   last-chunk, and re-chunking an empty piece would end the body early.
2. A size line is 1-16 hex digits, then extensions (`;name` or `;name=value`, value a token
   or a quoted string, optional whitespace around `;` and `=`), then CRLF; anything else,
   a bare LF or whitespace before CRLF included, is 400. So is chunk data not followed by CRLF.
3. A size that would take the body past `max_body` is 413 as soon as its line is read.
4. Trailer fields are checked (name, value, no bare CR or NUL) and dropped; a trailer
   section larger than `max_trailer` is 431.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bascule.http.errors import HttpError

__all__ = ["ChunkedBody"]

_SIZE = 0  # reading a chunk-size line
_DATA = 1  # inside a chunk's data
_DATA_END = 2  # expecting the CRLF after a chunk's data
_TRAILER = 3  # reading the trailer section, up to its empty line
_DONE = 4

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*\r\n"
)
_FIELD_LINE = re.compile(_TOKEN + rb":[\t \x21-\x7e\x80-\xff]*\r\n")
MAX_SIZE_LINE = 4096
"""Bytes a size line with its extensions may take; extensions are never used by Bascule."""


class ChunkedBody:
    """Decodes one chunked body: data pieces go to `on_data` as they are decoded."""

    __slots__ = (
        "_line",
        "_max_body",
        "_max_trailer",
        "_on_data",
        "_remaining",
        "_state",
        "_total",
        "_trailer_bytes",
    )

    def __init__(self, on_data: Callable[[bytes], None], max_body: int, max_trailer: int) -> None:
        self._on_data = on_data
        self._max_body = max_body
        self._max_trailer = max_trailer
        self._state = _SIZE
        self._line = b""  # the part of a line (or of a data CRLF) read so far
        self._remaining = 0  # data bytes left in the current chunk
        self._total = 0  # data bytes announced so far
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> int:
        """Decode `data`: -1 if the body goes on, else the offset just past its end."""
        pos = 0
        size = len(data)
        while pos < size:
            state = self._state
            if state == _DATA:
                remaining = self._remaining
                if size - pos > remaining:
                    end = pos + remaining
                    self._state = _DATA_END
                    self._remaining = 0
                    self._on_data(data[pos:end])
                    pos = end
                else:
                    self._remaining = remaining - (size - pos)
                    if self._remaining == 0:
                        self._state = _DATA_END
                    self._on_data(data[pos:] if pos else data)
                    return -1
            elif state == _DATA_END:
                held = self._line
                got = held + data[pos : pos + 2 - len(held)]
                if got != b"\r\n"[: len(got)]:
                    raise HttpError(400, "malformed chunked body: chunk data longer than its size")
                pos += len(got) - len(held)
                if len(got) < 2:
                    self._line = got
                    return -1
                self._line = b""
                self._state = _SIZE
            else:
                newline = data.find(b"\n", pos)
                end = size if newline < 0 else newline + 1
                self._count_line(len(self._line) + end - pos, end - pos)
                if newline < 0:
                    self._line += data[pos:]
                    return -1
                line = self._line + data[pos:end] if self._line else data[pos:end]
                self._line = b""
                pos = end
                if state == _SIZE:
                    self._size_line(line)
                elif line == b"\r\n":
                    self._state = _DONE
                    return pos
                elif _FIELD_LINE.fullmatch(line) is None:
                    raise HttpError(400, "malformed chunked body: a bad trailer field")
        return -1

    def _size_line(self, line: bytes) -> None:
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise HttpError(400, "malformed chunked body: a bad chunk-size line")
        chunk = int(match.group(1), 16)
        self._total += chunk
        if self._total > self._max_body:
            raise HttpError(413, f"the request body is larger than {self._max_body} bytes")
        if chunk:
            self._remaining = chunk
            self._state = _DATA
        else:
            self._state = _TRAILER

    def _count_line(self, length: int, added: int) -> None:
        """A line is `length` bytes long so far, `added` of them just read: within limits?"""
        if self._state == _SIZE:
            if length > MAX_SIZE_LINE:
                raise HttpError(400, "malformed chunked body: a chunk-size line too long")
            return
        self._trailer_bytes += added
        if self._trailer_bytes > self._max_trailer:
            raise HttpError(431, "the trailer section is larger than the header limit")
