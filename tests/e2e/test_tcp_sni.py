"""TLS passthrough with SNI routing: Bascule reads the server name from the ClientHello,
picks the upstream by it, and the client's TLS handshake completes with the target."""

from __future__ import annotations

import logging
import socket
import ssl

import pytest
import trustme

from e2e.tcp_backends import closed_at_once, connect, named_tls, start_tls, tcp_config


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_backend(backend_loop, ca):
    """`tls_backend(name, *hostnames)`: a TLS target answering its name, with a certificate
    for `hostnames` signed by the test CA."""
    started = []

    def start(name: bytes, *hostnames: str):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*hostnames).configure_cert(context)
        backend = start_tls(backend_loop, named_tls(name), context)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend_loop.stop(backend)


def ask(port: int, ca: trustme.CA, server_name: str | None) -> bytes:
    """Complete a TLS handshake through Bascule (verifying the certificate when a name is
    given) and return the target's answer."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if server_name is None:
        context.check_hostname = False
    with connect(port) as raw, context.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(b"who are you?\n")
        return tls.recv(100)


@pytest.fixture
def routed(tls_backend, bascule):
    alpha = tls_backend(b"alpha", "alpha.example.test")
    beta = tls_backend(b"beta", "*.beta.example.test")
    fallback = tls_backend(b"default", "default.example.test")
    proxy = bascule(
        tcp_config(
            listener={
                "upstream": "default",
                "sni_routes": {"alpha.example.test": "alpha", "*.beta.example.test": "beta"},
            },
            upstreams={
                "alpha": {"targets": [{"address": alpha.address}]},
                "beta": {"targets": [{"address": beta.address}]},
                "default": {"targets": [{"address": fallback.address}]},
            },
        )
    )
    return proxy


def test_each_server_name_reaches_its_own_target(routed, ca):
    assert ask(routed.port, ca, "alpha.example.test") == b"alpha\n"
    assert ask(routed.port, ca, "api.beta.example.test") == b"beta\n"
    lines = routed.log_lines(2)
    assert [(line["server_name"], line["upstream"]) for line in lines[-2:]] == [
        ("alpha.example.test", "alpha"),
        ("api.beta.example.test", "beta"),
    ]


def test_a_name_no_route_matches_and_no_name_go_to_the_default(routed, ca):
    with pytest.raises(ssl.SSLCertVerificationError):
        ask(routed.port, ca, "other.example.test")  # the default's certificate: not this name
    assert routed.last_log()["upstream"] == "default"
    assert ask(routed.port, ca, None) == b"default\n"
    assert routed.log_lines(2)[1]["server_name"] is None


def test_plain_text_instead_of_a_client_hello_closes_cleanly(routed, ca, caplog):
    caplog.set_level(logging.INFO, logger="bascule.tcp")
    with connect(routed.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: alpha.example.test\r\n\r\n")
        assert closed_at_once(sock)
    assert "plain text instead of a TLS ClientHello" in routed.last_log()["error"]
    assert ask(routed.port, ca, "alpha.example.test") == b"alpha\n"  # still serving


def test_without_a_default_an_unknown_name_is_refused(tls_backend, bascule, ca):
    alpha = tls_backend(b"alpha", "alpha.example.test")
    config = tcp_config(
        listener={"sni_routes": {"alpha.example.test": "alpha"}},
        upstreams={"alpha": {"targets": [{"address": alpha.address}]}},
    )
    del config["listeners"][0]["upstream"]
    proxy = bascule(config)
    with pytest.raises((ssl.SSLError, ConnectionError, socket.timeout)):
        ask(proxy.port, ca, "beta.example.test")
    assert "no sni_routes entry matches" in proxy.last_log()["error"]
    assert ask(proxy.port, ca, "alpha.example.test") == b"alpha\n"


def test_a_proxy_header_then_a_client_hello(tls_backend, bascule, ca):
    """Behind a balancer that sends PROXY headers, routing by server name still works."""
    alpha = tls_backend(b"alpha", "alpha.example.test")
    config = tcp_config(
        listener={"proxy_protocol": "accept", "sni_routes": {"alpha.example.test": "alpha"}},
        upstreams={"alpha": {"targets": [{"address": alpha.address}]}},
        trusted_proxies=["127.0.0.1/32"],
    )
    del config["listeners"][0]["upstream"]
    proxy = bascule(config)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with connect(proxy.port) as raw:
        raw.sendall(b"PROXY TCP4 198.51.100.4 192.0.2.1 40000 443\r\n")
        with context.wrap_socket(raw, server_hostname="alpha.example.test") as tls:
            tls.sendall(b"who are you?\n")
            assert tls.recv(100) == b"alpha\n"
    line = proxy.last_log()
    assert (line["client"], line["server_name"]) == ("198.51.100.4", "alpha.example.test")
