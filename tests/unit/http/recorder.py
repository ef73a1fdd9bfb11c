"""A codec handler that records events as plain tuples, for byte-transcript tests."""

from __future__ import annotations

from bascule.http.codec import RequestReader, ResponseReader
from bascule.http.head import RequestHead, ResponseHead

Event = tuple[object, ...]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.heads: list[RequestHead | ResponseHead] = []

    def on_request_head(self, head: RequestHead) -> None:
        self.heads.append(head)
        self.events.append(("head", head.method, head.target, head.version))

    def on_request_body(self, chunk: bytes) -> None:
        self.events.append(("body", chunk))

    def on_request_end(self) -> None:
        self.events.append(("end",))

    def on_informational(self, head: ResponseHead) -> None:
        self.events.append(("info", head.status))

    def on_response_head(self, head: ResponseHead) -> None:
        self.heads.append(head)
        self.events.append(("head", head.status))

    def on_response_body(self, chunk: bytes) -> None:
        self.events.append(("body", chunk))

    def on_response_end(self) -> None:
        self.events.append(("end",))

    def merged(self) -> list[Event]:
        """Events with adjacent body pieces joined: how a body is split is not behaviour."""
        out: list[Event] = []
        for event in self.events:
            if event[0] == "body" and out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + event[1])  # type: ignore[operator]
            else:
                out.append(event)
        return out


def request_reader(
    max_header_bytes: int = 4096, max_uri_bytes: int = 1024, max_body_bytes: int = 1 << 20
) -> tuple[RequestReader, Recorder]:
    rec = Recorder()
    return RequestReader(rec, max_header_bytes, max_uri_bytes, max_body_bytes), rec


def response_reader(max_header_bytes: int = 4096) -> tuple[ResponseReader, Recorder]:
    rec = Recorder()
    return ResponseReader(rec, max_header_bytes), rec


def every_split(data: bytes) -> list[list[bytes]]:
    """`data` whole, cut once at every offset, and byte by byte: the read boundaries a
    parser must not care about."""
    cuts = [[data[:i], data[i:]] for i in range(1, len(data))]
    return [[data], *cuts, [data[i : i + 1] for i in range(len(data))]]
