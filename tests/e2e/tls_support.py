"""TLS for end-to-end tests: certificates made with trustme, TLS clients over raw sockets
(to choose SNI, versions and sessions), and TLS backends on the shared backend loop."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from e2e.backends import Backend, BackendLoop, Responder, http
from e2e.wire import Response, Wire


@dataclass
class Files:
    """A certificate (or CA) and key written as PEM files."""

    cert: str
    key: str

    def entry(self) -> dict[str, str]:
        return {"cert": self.cert, "key": self.key}


@dataclass
class Pki:
    """One CA and what it issued, as objects and as files in `folder`."""

    folder: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def ca_file(self) -> str:
        path = self.folder / "ca.pem"
        if not path.exists():
            self.ca.cert_pem.write_to_path(str(path))
        return str(path)

    def issue(self, stem: str, *names: str, common_name: str | None = None) -> Files:
        leaf = self.ca.issue_cert(
            *names,
            common_name=common_name,
            organization_name="Example",
            organization_unit_name="Ops",
        )
        cert, key = self.folder / f"{stem}.pem", self.folder / f"{stem}.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return Files(str(cert), str(key))

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts this CA (TLS 1.2+, names checked)."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def server_context(self, files: Files) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(files.cert, files.key)
        return ctx


class TlsWire(Wire):
    """Wire over TLS: `server_name` is sent as SNI (None: none is sent)."""

    def __init__(
        self,
        port: int,
        ctx: ssl.SSLContext,
        server_name: str | None,
        *,
        session: ssl.SSLSession | None = None,
        timeout: float = 5.0,
    ) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name, session=session)
        except BaseException:
            raw.close()
            raise
        self.file = self.sock.makefile("rb")

    @property
    def tls(self) -> ssl.SSLSocket:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock

    def peer_names(self) -> list[str]:
        cert = self.tls.getpeercert()
        assert cert is not None
        return [str(value) for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]

    def get(self, path: str = "/", host: str = "app.test", extra: str = "") -> Response:
        return self.request(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())


def tls_backend(loop: BackendLoop, ctx: ssl.SSLContext, respond: Responder) -> Backend:
    """An HTTPS backend: `respond` behind a TLS server made with `ctx`. Stop it with
    `loop.stop(backend)`."""
    return loop.start(http(respond), ssl=ctx)
