"""A raw HTTP/1.1 client for what httpx will not do: malformed bytes, pipelining, framing."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = True  # the framing said the body ended (not cut short by a close)
    chunked: bool = False
    terminal_chunk: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


class Wire:
    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, data: bytes, *, head: bool = False) -> Response:
        self.send(data)
        return self.read_response(head=head)

    def read_response(self, *, head: bool = False) -> Response:
        """The next response; `head` for the answer to a HEAD request (no body)."""
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed before a response")
        status = int(line.split(b" ", 2)[1])
        response = Response(status)
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            response.headers.append((name, value.strip()))
        if head or status < 200 or status in (204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.chunked = True
            self._read_chunked(response)
        elif (length := response.header("content-length")) is not None:
            response.body = self.file.read(int(length))
            response.complete = len(response.body) == int(length)
        else:
            response.body = self.file.read()
        return response

    def _read_chunked(self, response: Response) -> None:
        parts = []
        response.complete = False
        while True:
            line = self.file.readline()
            if not line.endswith(b"\r\n"):
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := self.file.readline()) not in (b"\r\n", b""):
                    pass
                response.terminal_chunk = response.complete = trailer == b"\r\n"
                break
            data = self.file.read(size + 2)
            parts.append(data[:size])
            if len(data) < size + 2:
                break
        response.body = b"".join(parts)

    def closed_within(self, seconds: float) -> bool:
        """True if the proxy closes the connection (EOF or reset) within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
        return False

    def read_all(self) -> bytes:
        """Everything until the proxy closes (a reset counts as a close)."""
        parts = []
        try:
            while data := self.sock.recv(65536):
                parts.append(data)
        except ConnectionResetError:
            pass
        return b"".join(parts)
