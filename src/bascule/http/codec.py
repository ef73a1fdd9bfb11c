"""The sans-IO HTTP/1.1 codec: bytes in, head/body/end callbacks out.

httptools (llhttp) validates every byte of a head and decodes Content-Length bodies; this
module adds what it cannot tell us: where a message ends inside a buffer. Rules:

1. A head ends at the first CRLFCRLF (llhttp refuses bare-LF line endings, so there is no
   other way for it to end). We feed the parser only up to there. Empty lines before a
   request line are skipped (RFC 9112 §2.2); any other byte before it is refused.
2. The request line is checked here too (llhttp lets two spaces pass, and skips a CR):
   `method SP target SP HTTP/d.d` or 400; a version other than 1.0 and 1.1 is 505; a method
   llhttp does not know is 501. A head in one read is checked where llhttp refuses it or
   after it; a head in pieces, before llhttp sees it, as soon as the line's CRLF arrives (so
   HTTP/0.9 is refused at once, not at the header timeout), and until then what came must
   be able to begin such a line. Either way the answer is the same.
3. A Content-Length body is fed exactly its remaining length.
4. A chunked body is decoded by `ChunkedBody` (see chunked.py), which knows exactly where it
   ends; llhttp never sees it, and gets a fresh parser for the next message.
5. So `feed()` never lets the parser run into the next message: the bytes after a message
   are handed back to the caller, who feeds them when it is ready for the next one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

import httptools

from bascule.http.chunked import ChunkedBody
from bascule.http.errors import HttpError
from bascule.http.head import RequestHead, ResponseHead
from bascule.http.target import parse_absolute_form

_HEAD = 0
_BODY_LENGTH = 1
_BODY_CHUNKED = 2
_BODY_UNTIL_CLOSE = 3  # responses only

_VERSIONS = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TARGET = rb"[!-~\x80-\xff]+"  # llhttp checks its bytes further
_REQUEST_LINE = re.compile(_TCHAR + rb"+ " + _TARGET + rb" HTTP/[0-9]\.[0-9]\r\n")


def _prefixes(*parts: bytes) -> bytes:
    """A pattern matching the parts in sequence, stopping after any of them."""
    pattern = b""
    for part in reversed(parts):
        pattern = b"(?:" + part + pattern + b")?"
    return pattern


# What may begin a request line (rule 2).
_REQUEST_LINE_START = re.compile(
    _TCHAR
    + b"*"
    + _prefixes(
        b" ", _TARGET, b" ", *(bytes((c,)) for c in b"HTTP/"), b"[0-9]", rb"\.", b"[0-9]", b"\r"
    )
)
_LINE_START_CHECKED = 256  # bytes of an unfinished request line checked at each read
UNLIMITED = 1 << 62
"""A response body's limit: Bascule forwards whatever its targets send."""


class RequestHandler(Protocol):
    def on_request_head(self, head: RequestHead) -> None: ...
    def on_request_body(self, chunk: bytes) -> None: ...
    def on_request_end(self) -> None: ...


class ResponseHandler(Protocol):
    def on_informational(self, head: ResponseHead) -> None: ...
    def on_response_head(self, head: ResponseHead) -> None: ...
    def on_response_body(self, chunk: bytes) -> None: ...
    def on_response_end(self) -> None: ...


def _unwrap(exc: httptools.HttpParserError) -> BaseException:
    """A handler's own exception comes back wrapped by the parser; give the original."""
    if isinstance(exc, httptools.HttpParserCallbackError) and exc.__context__ is not None:
        return exc.__context__
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        # rule 2: the line was checked first, so the method is a token
        return HttpError(501, "the request method is not implemented")
    return HttpError(400, f"malformed message: {exc}")


def _after_empty_lines(data: bytes) -> bytes:
    """`data` without the empty lines (CRLF) before a start line; any other CR or LF there
    is refused (rule 1). A CR at the very end is kept: its LF may be in the next read."""
    skip = 0
    while data.startswith(b"\r\n", skip):
        skip += 2
    rest = data[skip:] if skip else data
    if rest and (rest[0] == 10 or (rest[0] == 13 and len(rest) > 1)):
        raise HttpError(400, "a bare CR or LF before the start line")
    return rest


class _MessageReader:
    """What request and response readers share: finding where messages end (rules 1-5).

    The parser calls `on_body` of the handler directly (one Python call per chunk, not two).
    """

    __slots__ = (
        "_chunks",
        "_complete",
        "_fed",
        "_head_request",
        "_max_header_bytes",
        "_parser",
        "_raw",
        "_remaining",
        "_state",
        "partial_head",
        "upgraded_at",
    )

    def __init__(self, max_header_bytes: int) -> None:
        self._max_header_bytes = max_header_bytes
        # the bytes of a head begun but not complete; b"" between messages
        self.partial_head = b""
        self._fed = 0  # how much of `partial_head` the parser has been fed
        self._raw = b""
        self._state = _HEAD
        self._remaining = 0
        self._complete = False
        self._head_request = False  # responses only: the request was HEAD
        self._chunks: ChunkedBody | None = None  # the chunked body being read
        self.upgraded_at = -1
        self._parser: Any = self._new_parser()  # a request or a response parser

    def _new_parser(self) -> Any:
        raise NotImplementedError

    def _start_line(self, head: bytes) -> bool:
        """Check the start line at the beginning of `head` (a head so far) before the
        parser sees it: raises HttpError if it is refused, and says whether the parser
        may be fed (not before the line is complete)."""
        return True

    def on_message_complete(self) -> None:
        raise NotImplementedError

    @property
    def in_head(self) -> bool:
        """True between messages or inside a head: the connection is not mid-body."""
        return self._state == _HEAD

    def feed(self, data: bytes) -> bytes | None:
        """Parse `data`. None: the message goes on. Bytes: it ended; these came after it."""
        try:
            if self._state == _HEAD and not self.partial_head:
                if data and (data[0] == 13 or data[0] == 10):  # empty lines first?
                    data = _after_empty_lines(data)
                    if len(data) < 2:  # nothing, or a CR whose LF is still to come
                        self.partial_head = data
                        return None
                # The usual case, in the fewest steps: a whole head at the start of `data`.
                end = data.find(b"\r\n\r\n") + 4
                if 4 <= end <= self._max_header_bytes:
                    whole = end == len(data)
                    self._raw = data if whole else data[:end]
                    self._parse_head(self._raw)
                    if self._complete:
                        return self._end(b"" if whole else data[end:])
                    if whole:
                        return None
                    data = data[end:]
            return self._feed(data)
        except httptools.HttpParserError as exc:
            raise _unwrap(exc) from None

    def _feed(self, data: bytes) -> bytes | None:
        """`feed`, from any state and any split of the bytes."""
        while True:
            state = self._state
            if state == _HEAD:
                data = self._feed_head(data)
                if self._complete:
                    return self._end(data)
                if not data:
                    return None
            elif state == _BODY_LENGTH:
                remaining = self._remaining
                if len(data) < remaining:
                    self._remaining = remaining - len(data)
                    self._parser.feed_data(data)
                    return None
                self._parser.feed_data(data[:remaining] if len(data) > remaining else data)
                return self._end(data[remaining:])
            elif state == _BODY_CHUNKED:
                chunks = self._chunks
                assert chunks is not None
                end = chunks.feed(data)
                if end < 0:
                    return None
                self.on_message_complete()
                return self._end(data[end:])
            else:
                self._parser.feed_data(data)
                return None

    def _feed_head(self, data: bytes) -> bytes:
        """Take in bytes of a head; returns those after it if it is complete, else b""."""
        held = self.partial_head
        buf = held + data if held else data
        if len(held) < 2:  # at the start of a message: rule 1
            buf = _after_empty_lines(buf)
            if len(buf) < 2:
                self.partial_head = buf
                return b""
            held = b"" if buf[: len(held)] != held else held
        end = buf.find(b"\r\n\r\n", len(held) - 3 if len(held) > 3 else 0)
        if end < 0 or end + 4 > self._max_header_bytes:
            # Garbage is refused now, not at a timeout; and before a head is refused for its
            # size, so that the answer does not depend on where the reads stopped.
            seen = buf if end < 0 else buf[: end + 2]  # not the empty line: no head yet
            if len(seen) > self._max_header_bytes:
                # judged on the bytes a client sending one at a time would have been
                # refused after, so that any split gets the same answer
                seen = seen[: self._max_header_bytes + 1]
            if self._fed or self._start_line(seen):
                self._parser.feed_data(seen[self._fed :] if self._fed else seen)
                self._fed = len(seen)
            if len(seen) > self._max_header_bytes:
                self._refuse_oversized(seen)
            self.partial_head = buf
            return b""
        end += 4
        self._raw = buf[:end] if end < len(buf) else buf
        fed = self._fed
        self.partial_head = b""
        self._fed = 0
        self._parse_head(self._raw[fed:] if fed else self._raw)
        return buf[end:]

    def _parse_head(self, data: bytes) -> None:
        """Feed the parser the rest of a head, which ends where `data` ends. Whatever it
        refuses, a bad start line is refused first, so the answer does not depend on how
        the head was split into reads (rule 2)."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgraded_at = upgrade.args[0]
            self._complete = True
        except httptools.HttpParserError:
            self._start_line(self._raw)
            raise

    def _refuse_oversized(self, buf: bytes) -> None:
        raise HttpError(431, "the header block is larger than the limit")

    def _read_chunked(self, on_data: Callable[[bytes], None], max_body: int) -> None:
        self._state = _BODY_CHUNKED
        self._chunks = ChunkedBody(on_data, max_body, self._max_header_bytes)

    def _end(self, rest: bytes) -> bytes:
        """The message is complete: be ready for the next one, and hand back what followed."""
        if self._head_request or self._chunks is not None:
            # llhttp still waits for the body a HEAD response only announced, or for the
            # chunked body it never saw: start afresh
            self._head_request = False
            self._chunks = None
            self._parser = self._new_parser()
        self._state = _HEAD
        self._complete = False
        return rest

    def eof(self) -> bool:
        """The peer closed. True if that ends the current message (a read-until-close body)."""
        return False


class RequestReader(_MessageReader):
    """Reads requests from a client. One message at a time; see the module rules."""

    __slots__ = ("_handler", "_max_body_bytes", "_max_uri_bytes")

    def __init__(
        self,
        handler: RequestHandler,
        max_header_bytes: int,
        max_uri_bytes: int,
        max_body_bytes: int,
    ) -> None:
        self._handler = handler
        self._max_uri_bytes = max_uri_bytes
        self._max_body_bytes = max_body_bytes
        super().__init__(max_header_bytes)

    def _new_parser(self) -> Any:
        return httptools.HttpRequestParser(
            _Callbacks(
                on_headers_complete=self.on_headers_complete,
                on_body=self._handler.on_request_body,
                on_message_complete=self.on_message_complete,
            )
        )

    def _refuse_oversized(self, buf: bytes) -> None:
        line_end = buf.find(b"\r\n")
        if line_end < 0 or line_end > self._max_uri_bytes:
            raise HttpError(414, "the request line is longer than the URI limit")
        raise HttpError(431, "the request header block is larger than the limit")

    def _start_line(self, head: bytes) -> bool:
        line_end = head.find(b"\r\n")
        if line_end < 0:
            # its start only: a long line is not scanned again at every read
            if _REQUEST_LINE_START.fullmatch(head[:_LINE_START_CHECKED]) is None:
                raise HttpError(400, "malformed request line")
            return False
        if _REQUEST_LINE.match(head) is None:  # no part of it can hold a CR: it ends at line_end
            raise HttpError(400, "malformed request line: expected METHOD SP target SP HTTP/1.1")
        protocol = head[line_end - 8 : line_end]
        if protocol not in _VERSIONS:
            raise HttpError(505, f"{protocol.decode()} is not supported; use HTTP/1.1")
        return True

    def on_headers_complete(self) -> None:
        # llhttp has validated the method (one it knows: it starts with a letter) and the
        # target's bytes, not the spaces between the parts, nor the CR or LF it skips first;
        # and it ends the line at a bare LF, which must not hide in what we take as target
        raw = self._raw
        line_end = raw.find(b"\n") - 1  # where llhttp ended the line: at a LF, CR or not
        parts = raw[:line_end].split(b" ")
        if raw[line_end] != 13 or len(parts) != 3 or not 65 <= raw[0] <= 90:
            self._start_line(raw)
            raise HttpError(400, "malformed request line")
        method, target, protocol = parts
        version = _VERSIONS.get(protocol)
        if version is None:
            self._start_line(raw)
            raise HttpError(400, "malformed request line")
        if len(target) > self._max_uri_bytes:
            raise HttpError(414, "the request URI is longer than the limit")
        authority: bytes | None = None
        if target[:1] != b"/":
            authority, target = parse_absolute_form(method, target)
        head = RequestHead(raw, version, method, target)
        if not head.host and version == "1.1" and head.header(b"host") is None:
            # even with the host in the target (RFC 9112 §3.2)
            raise HttpError(400, "the request has no Host header; one is required")
        if authority is not None:
            head.host = authority
            head.absolute_form = True
            head.line_end = raw.find(b"\r\n")  # the target given was not the one received
        if head.chunked:
            _check_codings(head, version)
            self._read_chunked(self._handler.on_request_body, self._max_body_bytes)
        elif head.content_length:
            self._state = _BODY_LENGTH
            self._remaining = head.content_length
        self._handler.on_request_head(head)

    def on_message_complete(self) -> None:
        self._complete = True
        self._handler.on_request_end()


def _check_codings(head: RequestHead, version: str) -> None:
    """A request's Transfer-Encoding (RFC 9112 §6.1): exactly `chunked`, on HTTP/1.1."""
    if version != "1.1":
        raise HttpError(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
    codings = head.transfer_codings()
    if codings != [b"chunked"]:
        if codings.count(b"chunked") != 1 or codings[-1] != b"chunked":
            raise HttpError(400, "Transfer-Encoding must end in chunked, applied once")
        raise HttpError(501, "only the chunked transfer coding is implemented")


class ResponseReader(_MessageReader):
    """Reads responses from a target. Call `expect_head_response()` before the response to a
    HEAD request; it has headers only, whatever they say."""

    __slots__ = ("_handler", "_status")

    def __init__(self, handler: ResponseHandler, max_header_bytes: int) -> None:
        self._handler = handler
        self._status = 0
        super().__init__(max_header_bytes)

    def _new_parser(self) -> Any:
        return httptools.HttpResponseParser(
            _Callbacks(
                on_headers_complete=self.on_headers_complete,
                on_body=self._handler.on_response_body,
                on_message_complete=self.on_message_complete,
            )
        )

    def expect_head_response(self) -> None:
        self._head_request = True

    def on_headers_complete(self) -> None:
        raw = self._raw  # validated by llhttp: "HTTP/x.y SP 3DIGIT SP reason"...
        if not raw.startswith(b"HTTP/"):  # ... but for the CR or LF it skips before it
            raise HttpError(400, "bytes before the status line")
        status = self._status = int(raw[9:12])
        version = _VERSIONS.get(raw[:8], "1.1")
        head = ResponseHead(raw, version, status)
        if 100 <= status < 200 and status != 101:
            # An interim response ends with its head, whatever it says (RFC 9110 §15.2);
            # llhttp would wait for the body a Content-Length announced.
            self._parser = self._new_parser()
            self._handler.on_informational(head)
            return
        if head.chunked and (version != "1.1" or head.transfer_codings() != [b"chunked"]):
            # as nginx: a coding Bascule cannot decode, or framing that cannot be trusted
            raise HttpError(502, "the response's Transfer-Encoding is not chunked alone")
        if self._head_request or status == 204 or status == 304:
            self._complete = True
        elif head.chunked:
            self._read_chunked(self._handler.on_response_body, UNLIMITED)
        elif head.content_length is not None:
            if head.content_length:
                self._state = _BODY_LENGTH
                self._remaining = head.content_length
        elif status != 101:
            self._state = _BODY_UNTIL_CLOSE
        self._handler.on_response_head(head)
        if self._head_request:
            self._handler.on_response_end()

    def on_message_complete(self) -> None:
        if self._state == _HEAD and not self._complete and 100 <= self._status < 200:
            return  # the end of a 1xx interim response: the final one follows
        if self._head_request:
            return
        self._complete = True
        self._handler.on_response_end()

    def eof(self) -> bool:
        if self._state == _BODY_UNTIL_CLOSE:
            self._state = _HEAD
            self._handler.on_response_end()
            return True
        return False


class _Callbacks:
    """What httptools calls back: it looks the methods up once, when the parser is made."""

    __slots__ = ("on_body", "on_headers_complete", "on_message_complete")

    def __init__(
        self,
        on_headers_complete: Callable[[], None],
        on_body: Callable[[bytes], None],
        on_message_complete: Callable[[], None],
    ) -> None:
        self.on_headers_complete = on_headers_complete
        self.on_body = on_body
        self.on_message_complete = on_message_complete
