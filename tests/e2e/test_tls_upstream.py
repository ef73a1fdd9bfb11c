"""TLS to targets (`upstreams.<name>.tls`): verified by CA and name, SNI, client
certificates (mTLS to the target), keep-alive reuse and health checks over TLS."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import pytest

from e2e.backends import echo
from e2e.proxy import config, wait_until
from e2e.tls_support import Files, Pki, tls_backend


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("upstream-pki"))


@pytest.fixture(scope="module")
def server(pki: Pki) -> Files:
    """The targets' certificate: for backend.test and for the loopback address."""
    return pki.issue("backend", "backend.test", "127.0.0.1")


@pytest.fixture
def https_backend(backend_loop, pki: Pki, server: Files):
    """`https_backend(respond, client_ca=None)`: a TLS target; with `client_ca` it requires
    a client certificate from that CA. Records the SNI names it was asked for."""
    started = []

    def start(respond=echo, client_ca: str | None = None):
        ctx = pki.server_context(server)
        names: list[str | None] = []
        ctx.sni_callback = lambda conn, name, _: names.append(name)  # type: ignore[assignment,return-value]
        if client_ca is not None:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        b = tls_backend(backend_loop, ctx, respond)
        b.sni = names  # type: ignore[attr-defined]
        started.append(b)
        return b

    yield start
    for b in started:
        backend_loop.stop(b)


def through(proxy, path: str = "/") -> httpx.Response:
    return httpx.get(proxy.url(path), timeout=5)


def test_a_verified_target_by_ip_gets_the_request(bascule, https_backend, pki):
    target = https_backend()
    proxy = bascule(config(target, upstream={"tls": {"ca": pki.ca_file}}))
    response = through(proxy, "/x")
    assert response.status_code == 200
    assert json.loads(response.text)["path"] == "/x"
    assert target.sni == [None]  # an IP address is checked, but sent as no SNI


def test_sni_names_the_target_and_is_what_its_certificate_is_checked_for(
    bascule, https_backend, pki
):
    target = https_backend()
    tls = {"ca": pki.ca_file, "sni": "backend.test"}
    proxy = bascule(config(target, upstream={"tls": tls}))
    assert through(proxy).status_code == 200
    assert target.sni == ["backend.test"]


def test_pooled_tls_connections_are_reused(bascule, https_backend, pki):
    target = https_backend()
    proxy = bascule(config(target, upstream={"tls": {"ca": pki.ca_file}}))
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            assert client.get(proxy.url()).status_code == 200
    assert target.connections == 1


@pytest.mark.parametrize(
    ("tls", "reason"),
    [
        ({}, "certificate verify failed: unable to get local issuer certificate"),  # system CAs
        ({"sni": "other.test"}, "certificate verify failed: Hostname mismatch"),
    ],
)
def test_a_target_failing_verification_is_a_502_naming_it_and_the_tls_error(
    bascule, https_backend, pki, tls, reason
):
    target = https_backend()
    if "sni" in tls:
        tls = {**tls, "ca": pki.ca_file}
    proxy = bascule(config(target, upstream={"tls": tls}))
    response = through(proxy)
    assert response.status_code == 502
    assert (
        f"connecting to target {target.address} failed: TLS handshake failed: {reason}"
        in response.text
    )
    assert target.requests == []
    line = proxy.last_log()
    assert (line["error_source"], line["target"]) == ("upstream", target.address)


def test_verify_false_accepts_any_certificate(bascule, https_backend):
    target = https_backend()
    proxy = bascule(config(target, upstream={"tls": {"verify": False}}))
    assert through(proxy).status_code == 200


async def plain_http_server(b, reader, writer) -> None:
    """What an HTTP server answers a TLS ClientHello with: a 400, then the close."""
    await reader.read(1024)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()


def test_a_plain_http_target_behind_tls_is_a_502_saying_so(backend, bascule, pki):
    target = backend(plain_http_server, raw=True)
    proxy = bascule(config(target, upstream={"tls": {"ca": pki.ca_file}}))
    response = through(proxy)
    assert response.status_code == 502
    assert "TLS handshake failed: wrong version number (does the target speak TLS" in (
        response.text
    )


def test_a_client_certificate_is_shown_to_a_target_that_requires_one(
    bascule, https_backend, pki, tmp_path_factory
):
    clients = Pki(tmp_path_factory.mktemp("upstream-clients"))
    bascule_cert = clients.issue("bascule", "bascule.test", common_name="bascule")
    target = https_backend(client_ca=clients.ca_file)
    with_cert: dict[str, Any] = {"ca": pki.ca_file, **bascule_cert.entry()}
    proxy = bascule(config(target, upstream={"tls": with_cert}))
    assert through(proxy).status_code == 200

    refused = https_backend(client_ca=clients.ca_file)
    proxy = bascule(config(refused, upstream={"tls": {"ca": pki.ca_file}}))
    assert through(proxy).status_code == 502
    assert refused.requests == []


def test_http_health_checks_reach_a_tls_target_over_tls(bascule, https_backend, pki):
    target = https_backend()
    health = {"http": {"path": "/healthz"}, "interval": "50ms", "initial": "down", "healthy": 1}
    proxy = bascule(config(target, upstream={"tls": {"ca": pki.ca_file}, "health": health}))
    assert wait_until(lambda: any(r.path == "/healthz" for r in target.requests))
    assert wait_until(lambda: through(proxy).status_code == 200)
