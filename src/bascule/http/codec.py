"""The sans-IO HTTP/1.1 codec: bytes in, head/body/end callbacks out.

httptools (llhttp) validates every byte and decodes bodies; this module adds what it cannot
tell us: where a message ends inside a buffer. Rules:

1. A head ends at the first CRLFCRLF (llhttp refuses bare-LF line endings, so there is no
   other way for it to end). We feed the parser only up to there.
2. A Content-Length body is fed exactly its remaining length.
3. A chunked body can only end right after a CRLFCRLF (last chunk, optional trailers, empty
   line), so it is fed in pieces that stop at each CRLFCRLF; after each piece we ask whether
   the message completed.
4. So `feed()` never lets the parser run into the next message: the bytes after a message
   are handed back to the caller, who feeds them when it is ready for the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import httptools

from bascule.http.errors import HttpError
from bascule.http.head import RequestHead, ResponseHead

_HEAD = 0
_BODY_LENGTH = 1
_BODY_CHUNKED = 2
_BODY_UNTIL_CLOSE = 3  # responses only

_VERSIONS = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}


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
    return HttpError(400, f"malformed message: {exc}")


class _MessageReader:
    """What request and response readers share: finding where messages end (rules 1-4).

    The parser calls `on_body` of the handler directly (one Python call per chunk, not two).
    """

    __slots__ = (
        "_complete",
        "_head_request",
        "_max_header_bytes",
        "_parser",
        "_raw",
        "_remaining",
        "_state",
        "_tail",
        "partial_head",
        "upgraded_at",
    )

    def __init__(self, max_header_bytes: int) -> None:
        self._max_header_bytes = max_header_bytes
        # the bytes of a head begun but not complete; b"" between messages
        self.partial_head = b""
        self._raw = b""
        self._state = _HEAD
        self._remaining = 0
        self._complete = False
        self._head_request = False  # responses only: the request was HEAD
        self._tail = b""  # the last bytes of a chunked body fed so far (rule 3)
        self.upgraded_at = -1
        self._parser: Any = self._new_parser()  # a request or a response parser

    def _new_parser(self) -> Any:
        raise NotImplementedError

    @property
    def in_head(self) -> bool:
        """True between messages or inside a head: the connection is not mid-body."""
        return self._state == _HEAD

    def feed(self, data: bytes) -> bytes | None:
        """Parse `data`. None: the message goes on. Bytes: it ended; these came after it."""
        try:
            if self._state == _HEAD and not self.partial_head:
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
        parse = self._parser.feed_data
        while True:
            state = self._state
            if state == _HEAD:
                held = self.partial_head
                if held:
                    buf = held + data
                    end = buf.find(b"\r\n\r\n", len(held) - 3 if len(held) > 3 else 0)
                else:
                    buf = data
                    end = data.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > self._max_header_bytes:
                        self._refuse_oversized(buf)
                    parse(data)  # validate early: garbage is refused now, not at a timeout
                    self.partial_head = buf
                    return None
                end += 4
                if end > self._max_header_bytes:
                    self._refuse_oversized(buf[:end])
                self._raw = buf[:end] if end < len(buf) else buf
                self.partial_head = b""
                fed = end - len(held)
                if fed < len(data):
                    self._parse_head(data[:fed])
                    data = data[fed:]
                else:
                    self._parse_head(data)
                    data = b""
                if self._complete:
                    return self._end(data)
                if not data:
                    return None
            elif state == _BODY_LENGTH:
                remaining = self._remaining
                if len(data) < remaining:
                    self._remaining = remaining - len(data)
                    parse(data)
                    return None
                parse(data[:remaining] if len(data) > remaining else data)
                return self._end(data[remaining:])
            elif state == _BODY_CHUNKED:
                start = 0
                while True:
                    end = self._chunked_piece_end(data, start)
                    if end < 0:
                        piece = data[start:] if start else data
                        parse(piece)
                        self._tail = (self._tail + piece[-3:])[-3:]
                        return None
                    parse(data[start:end])
                    self._tail = b""
                    if self._complete:
                        return self._end(data[end:])
                    start = end
            else:
                parse(data)
                return None

    def _parse_head(self, data: bytes) -> None:
        """Feed the parser the rest of a head, which ends where `data` ends."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgraded_at = upgrade.args[0]
            self._complete = True

    def _chunked_piece_end(self, data: bytes, start: int) -> int:
        """The offset just past the next CRLFCRLF in `data` from `start`, or -1; at the start
        of `data` this counts one begun in the bytes fed before (a terminator split across
        reads), so the parser never runs past the end of the message into the next one."""
        if start == 0 and self._tail:
            found = (self._tail + data[:3]).find(b"\r\n\r\n")
            if found >= 0:
                return found + 4 - len(self._tail)
        end = data.find(b"\r\n\r\n", start)
        return end + 4 if end >= 0 else -1

    def _refuse_oversized(self, buf: bytes) -> None:
        raise HttpError(431, "the header block is larger than the limit")

    def _end(self, rest: bytes) -> bytes:
        """The message is complete: be ready for the next one, and hand back what followed."""
        self._state = _HEAD
        self._complete = False
        if self._head_request:
            # llhttp still waits for the body a HEAD response only announced: start afresh
            self._head_request = False
            self._parser = self._new_parser()
        return rest

    def eof(self) -> bool:
        """The peer closed. True if that ends the current message (a read-until-close body)."""
        return False


class RequestReader(_MessageReader):
    """Reads requests from a client. One message at a time; see the module rules."""

    __slots__ = ("_handler", "_max_uri_bytes")

    def __init__(self, handler: RequestHandler, max_header_bytes: int, max_uri_bytes: int) -> None:
        self._handler = handler
        self._max_uri_bytes = max_uri_bytes
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

    def on_headers_complete(self) -> None:
        # The parser has validated the request line: "METHOD SP target SP HTTP/x.y".
        raw = self._raw
        parts = raw[: raw.find(b"\r\n")].split(b" ")
        if len(parts) != 3:  # llhttp takes "GET /" as HTTP/0.9
            raise HttpError(505, "HTTP/0.9 is not supported; use HTTP/1.1")
        method, url, protocol = parts
        if len(url) > self._max_uri_bytes:
            raise HttpError(414, "the request URI is longer than the limit")
        version = _VERSIONS.get(protocol)
        if version is None:
            raise HttpError(505, f"{protocol.decode()} is not supported; use HTTP/1.1")
        head = RequestHead(raw, version, method, url)
        if head.chunked:
            self._state = _BODY_CHUNKED
        elif head.content_length:
            self._state = _BODY_LENGTH
            self._remaining = head.content_length
        self._handler.on_request_head(head)

    def on_message_complete(self) -> None:
        self._complete = True
        self._handler.on_request_end()


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
        raw = self._raw  # validated: "HTTP/x.y SP 3DIGIT SP reason"
        status = self._status = int(raw[9:12])
        head = ResponseHead(raw, _VERSIONS.get(raw[:8], "1.1"), status)
        if 100 <= status < 200 and status != 101:
            self._handler.on_informational(head)
            return
        if self._head_request or status == 204 or status == 304:
            self._complete = True
        elif head.chunked:
            self._state = _BODY_CHUNKED
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
