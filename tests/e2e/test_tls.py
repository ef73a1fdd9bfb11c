"""https listeners end to end: certificates by SNI, versions, ALPN, resumption, mTLS, HSTS,
and redirect_https on http listeners. Certificates are made by trustme for each session."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from e2e.backends import echo
from e2e.proxy import config, free_port, wait_until
from e2e.tls_support import Files, Pki, TlsWire, tls_backend
from e2e.wire import Wire


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def certs(pki: Pki) -> dict[str, Files]:
    return {
        "default": pki.issue("default", "default.test"),
        "a": pki.issue("a", "a.test"),
        "b": pki.issue("b", "*.b.test", "b.test"),
    }


def https(certs: dict[str, Files], *order: str, **tls: Any) -> dict[str, Any]:
    """An https listener with the certificates named in `order` (the first is the default)."""
    certificates = [certs[name].entry() for name in order or ("default", "a", "b")]
    return {"protocol": "https", "tls": {"certificates": certificates, **tls}}


def seen_by(response: Any) -> dict[str, str]:
    """The headers the echo backend received, lower-cased names."""
    assert response.status == 200, response.body
    return {k.lower(): v for k, v in json.loads(response.body)["headers"]}


# -- certificates by SNI -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "names"),
    [
        ("a.test", ["a.test"]),
        ("A.Test", ["a.test"]),  # names are not case-sensitive
        ("www.b.test", ["*.b.test", "b.test"]),  # the wildcard
        ("b.test", ["*.b.test", "b.test"]),
        ("x.www.b.test", ["default.test"]),  # a wildcard covers one label only
        ("unknown.test", ["default.test"]),  # no certificate has it: the default
        (None, ["default.test"]),  # no SNI at all: the default
    ],
)
def test_the_certificate_is_chosen_by_the_name_the_client_asks_for(
    backend, bascule, pki, certs, server_name, names
):
    proxy = bascule(config(backend(echo), listener=https(certs)))
    ctx = pki.client_context()
    ctx.check_hostname = False  # the point is which certificate comes back, not the check
    with TlsWire(proxy.port, ctx, server_name) as wire:
        assert wire.peer_names() == names
        assert wire.get().status == 200


def test_a_client_checking_names_accepts_each_certificate(backend, bascule, pki, certs):
    proxy = bascule(config(backend(echo), listener=https(certs)))
    for name in ("default.test", "a.test", "api.b.test"):
        with TlsWire(proxy.port, pki.client_context(), name) as wire:
            assert wire.get(host=name).status == 200


# -- versions, ALPN, resumption ------------------------------------------------------------


# A refused handshake: uvloop closes the connection without sending OpenSSL's alert, so the
# client sees an EOF in the handshake rather than "protocol version" (docs/operations.md).
REFUSED = (ssl.SSLError, ConnectionError)


def old_client(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers nothing newer than `maximum` (TLS 1.0 and 1.1 need OpenSSL's
    security level 0 to be offered at all)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.0 / 1.1 warns
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def test_tls_1_1_is_refused(backend, backend_loop, bascule, certs):
    client = old_client(ssl.TLSVersion.TLSv1_1)
    # First prove this client can speak TLS 1.1 at all, to a server that still allows it;
    # otherwise the refusal below would prove nothing.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.load_cert_chain(certs["default"].cert, certs["default"].key)
    control = tls_backend(backend_loop, permissive, echo)
    try:
        with TlsWire(control.port, client, "default.test") as wire:
            control_version = wire.tls.version()
    except ssl.SSLError as exc:
        pytest.skip(f"this OpenSSL cannot offer TLS 1.1 even at security level 0: {exc}")
    finally:
        backend_loop.stop(control)
    assert control_version == "TLSv1.1"

    proxy = bascule(config(backend(echo), listener=https(certs)))
    with pytest.raises(REFUSED):
        TlsWire(proxy.port, client, "default.test")
    with TlsWire(proxy.port, old_client(ssl.TLSVersion.TLSv1_2), "a.test") as wire:
        assert wire.tls.version() == "TLSv1.2"  # the default minimum is 1.2
        assert wire.get().status == 200


def test_min_version_1_3_refuses_tls_1_2(backend, bascule, certs):
    proxy = bascule(config(backend(echo), listener=https(certs, min_version="1.3")))
    with pytest.raises(REFUSED):
        TlsWire(proxy.port, old_client(ssl.TLSVersion.TLSv1_2), "a.test")
    with TlsWire(proxy.port, old_client(ssl.TLSVersion.TLSv1_3), "a.test") as wire:
        assert wire.tls.version() == "TLSv1.3"


def test_tls_1_2_uses_a_forward_secret_aead_cipher(backend, bascule, certs):
    proxy = bascule(config(backend(echo), listener=https(certs)))
    client = old_client(ssl.TLSVersion.TLSv1_2)
    client.set_ciphers("ALL:@SECLEVEL=0")  # offer everything, weak suites too
    with TlsWire(proxy.port, client, "a.test") as wire:
        name, _, _ = wire.tls.cipher() or ("", "", 0)
    assert name.startswith("ECDHE-")
    assert "GCM" in name or "CHACHA20" in name


def test_alpn_negotiates_http_1_1(backend, bascule, pki, certs):
    proxy = bascule(config(backend(echo), listener=https(certs)))
    ctx = pki.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with TlsWire(proxy.port, ctx, "a.test") as wire:
        assert wire.tls.selected_alpn_protocol() == "http/1.1"
        assert wire.get(host="a.test").status == 200
    h2_only = pki.client_context()
    h2_only.set_alpn_protocols(["h2"])
    with TlsWire(proxy.port, h2_only, "a.test") as wire:
        assert wire.tls.selected_alpn_protocol() is None  # no ALPN, still HTTP/1.1
        assert wire.get(host="a.test").status == 200


def test_a_client_stalling_the_handshake_is_disconnected(backend, bascule, certs):
    listener = {**https(certs), "timeouts": {"header": "300ms"}}
    proxy = bascule(config(backend(echo), listener=listener))
    with Wire(proxy.port) as wire:  # TCP only: no ClientHello ever comes
        assert wire.closed_within(2)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("server_name", ["default.test", "a.test"])
def test_a_second_connection_resumes_the_session(
    backend, bascule, pki, certs, version, server_name
):
    proxy = bascule(config(backend(echo), listener=https(certs)))
    ctx = pki.client_context()
    ctx.maximum_version = version
    with TlsWire(proxy.port, ctx, server_name) as first:
        assert first.get().status == 200  # TLS 1.3 tickets arrive after the handshake
        session = first.tls.session
        assert not first.tls.session_reused
    with TlsWire(proxy.port, ctx, server_name, session=session) as second:
        assert second.tls.session_reused
        assert second.get().status == 200


# -- client certificates (mTLS) ------------------------------------------------------------


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A client CA with one client, and a stranger from another CA."""
    trusted = Pki(tmp_path_factory.mktemp("clients"))
    stranger = Pki(tmp_path_factory.mktemp("strangers"))
    return {
        "ca": trusted.ca_file,
        "alice": trusted.issue("alice", "alice@example.test", common_name="alice"),
        "mallory": stranger.issue("mallory", "mallory@example.test", common_name="mallory"),
    }


def client_with(pki: Pki, files: Files | None) -> ssl.SSLContext:
    ctx = pki.client_context()
    if files is not None:
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


FORGED = "X-Client-Cert-Subject: CN=admin\r\n"
ALICE = "CN=alice,OU=Ops,O=Example"  # RFC 4514: the most specific name first


def test_mtls_required_accepts_a_client_certificate_from_the_ca(
    backend, bascule, pki, certs, clients
):
    listener = https(certs, client_ca=clients["ca"])
    proxy = bascule(config(backend(echo), listener=listener))
    with TlsWire(proxy.port, client_with(pki, clients["alice"]), "a.test") as wire:
        seen = seen_by(wire.get(extra=FORGED))  # a forged subject is replaced
        assert seen["x-client-cert-subject"] == ALICE
        assert seen["x-forwarded-proto"] == "https"
        seen = seen_by(wire.get())  # every request of the connection carries it
        assert seen["x-client-cert-subject"] == ALICE


@pytest.mark.parametrize("who", [None, "mallory"])
def test_mtls_required_refuses_a_client_without_a_valid_certificate(
    backend, bascule, pki, certs, clients, who
):
    listener = https(certs, client_ca=clients["ca"])
    target = backend(echo)
    proxy = bascule(config(target, listener=listener))
    client = client_with(pki, clients[who] if who else None)
    # TLS 1.3 clients finish their side of the handshake before the server has checked
    # their certificate: the refusal arrives as an alert, at the latest on the first read.
    with pytest.raises(REFUSED), TlsWire(proxy.port, client, "a.test") as wire:
        wire.get()
    assert target.requests == []


def test_mtls_optional_still_refuses_a_certificate_from_another_ca(
    backend, bascule, pki, certs, clients
):
    listener = https(certs, client_ca=clients["ca"], verify_client="optional")
    proxy = bascule(config(backend(echo), listener=listener))
    with (
        pytest.raises(REFUSED),
        TlsWire(proxy.port, client_with(pki, clients["mallory"]), "a.test") as wire,
    ):
        wire.get()


def test_mtls_optional_lets_a_client_without_a_certificate_in_unnamed(
    backend, bascule, pki, certs, clients
):
    listener = https(certs, client_ca=clients["ca"], verify_client="optional")
    proxy = bascule(config(backend(echo), listener=listener))
    with TlsWire(proxy.port, client_with(pki, None), "a.test") as wire:
        seen = seen_by(wire.get(extra=FORGED))
    assert "x-client-cert-subject" not in seen  # the forged one is dropped, none added
    with TlsWire(proxy.port, client_with(pki, clients["alice"]), "a.test") as wire:
        assert seen_by(wire.get())["x-client-cert-subject"] == ALICE


def test_the_client_subject_header_cannot_be_forged_on_plain_http(backend, bascule):
    proxy = bascule(config(backend(echo)))
    with Wire(proxy.port) as wire:
        response = wire.request(f"GET / HTTP/1.1\r\nHost: a\r\n{FORGED}\r\n".encode())
    assert "x-client-cert-subject" not in seen_by(response)


# -- HSTS, and X-Forwarded-Proto -----------------------------------------------------------


def test_hsts_is_sent_on_proxied_and_local_responses(backend, bascule, pki, certs):
    own = {"response": {"set": {"strict-transport-security": "max-age=60"}}}
    routes = [
        {"name": "local", "match": {"path": "/local"}, "respond": {"status": 200}},
        {"name": "own", "match": {"path": "/own"}, "upstream": "app", "headers": own},
        {"name": "app", "upstream": "app"},
    ]
    listener = {**https(certs), "hsts": {"max_age": "180d", "include_subdomains": True}}
    proxy = bascule(config(backend(echo), listener=listener, routes=routes))
    with TlsWire(proxy.port, pki.client_context(), "a.test") as wire:
        proxied = wire.get()
        local = wire.get("/local")
        route_own = wire.get("/own")
    expected = "max-age=15552000; includeSubDomains"
    assert proxied.header("strict-transport-security") == expected
    assert local.header("strict-transport-security") == expected
    assert route_own.header("strict-transport-security") == "max-age=60"  # the route's wins
    assert seen_by(proxied)["x-forwarded-proto"] == "https"


def test_hsts_true_means_one_year(backend, bascule, pki, certs):
    proxy = bascule(config(backend(echo), listener={**https(certs), "hsts": True}))
    with TlsWire(proxy.port, pki.client_context(), "a.test") as wire:
        assert wire.get().header("strict-transport-security") == "max-age=31536000"


# -- redirect_https ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_line", "host", "status", "location"),
    [
        ("GET /a/b?x=1", "example.test", 301, "https://example.test/a/b?x=1"),
        ("HEAD /", "Example.TEST:8080", 301, "https://example.test/"),
        ("POST /form", "example.test", 308, "https://example.test/form"),
        ("DELETE /x", "[::1]:80", 308, "https://[::1]/x"),
        ("GET http://example.test/abs?q", "example.test", 301, "https://example.test/abs?q"),
    ],
)
def test_redirect_https_sends_every_request_to_the_same_url_in_https(
    backend, bascule, request_line, host, status, location
):
    target = backend(echo)
    proxy = bascule(config(target, listener={"redirect_https": True}))
    body = "Content-Length: 2\r\n\r\nab" if request_line.startswith("POST") else "\r\n"
    with Wire(proxy.port) as wire:
        response = wire.request(
            f"{request_line} HTTP/1.1\r\nHost: {host}\r\n{body}".encode(),
            head=request_line.startswith("HEAD"),
        )
    assert (response.status, response.header("location")) == (status, location)
    assert target.requests == []


def test_redirect_https_names_the_port_unless_it_is_443(backend, bascule):
    proxy = bascule(config(backend(echo), listener={"redirect_https": {"port": 8443}}))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET /p HTTP/1.1\r\nHost: example.test:8080\r\n\r\n")
    assert response.header("location") == "https://example.test:8443/p"


def test_redirect_https_without_a_usable_host_is_a_400(backend, bascule):
    proxy = bascule(config(backend(echo), listener={"redirect_https": True}))
    with Wire(proxy.port) as wire:
        no_host = wire.request(b"GET / HTTP/1.0\r\n\r\n")
    with Wire(proxy.port) as wire:
        odd_host = wire.request(b"GET / HTTP/1.1\r\nHost: a@evil.test\r\n\r\n")
    assert (no_host.status, odd_host.status) == (400, 400)
    assert b"no Host header" in no_host.body


# -- certificate files as the operator gets them wrong --------------------------------------


def run_bascule(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bascule", *args], capture_output=True, text=True, timeout=20
    )


def test_check_and_run_name_each_unusable_certificate_file(tmp_path: Path, certs):
    not_pem = tmp_path / "notes.pem"
    not_pem.write_text("this is not a certificate\n")
    config_file = tmp_path / "bascule.yaml"
    config_file.write_text(
        json.dumps(
            {
                "listeners": [
                    {
                        "name": "secure",
                        "bind": "127.0.0.1:18443",
                        "protocol": "https",
                        "tls": {
                            "certificates": [
                                {"cert": str(tmp_path / "missing.pem"), "key": certs["a"].key},
                                {"cert": str(not_pem), "key": certs["a"].key},
                                {"cert": certs["a"].cert, "key": certs["b"].key},
                            ]
                        },
                    }
                ],
                "routes": [{"name": "ok", "respond": {}}],
            }
        )
    )
    check = run_bascule("check", "-c", str(config_file))
    assert check.returncode == 2
    assert f"listener 'secure': certificate {tmp_path}/missing.pem: cannot read: No such" in (
        check.stderr
    )
    assert f"certificate {not_pem}: not a PEM certificate" in check.stderr
    assert f"key {certs['b'].key} and certificate {certs['a'].cert} cannot be used" in (
        check.stderr
    )
    assert "key values mismatch" in check.stderr
    run = run_bascule("run", "-c", str(config_file), "--pid-file", str(tmp_path / "pid"))
    assert run.returncode == 2
    assert "missing.pem: cannot read" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_reload_reads_renewed_certificates_and_keeps_serving_on_a_bad_one(tmp_path, pki):
    """The real `bascule run`: SIGHUP after the files change serves the new certificate; a
    reload onto a broken file is refused and the running certificate stays."""
    site = Files(str(tmp_path / "site.pem"), str(tmp_path / "site.key"))

    def install(name: str) -> None:
        issued = pki.issue(name, f"{name}.test")
        Path(site.cert).write_bytes(Path(issued.cert).read_bytes())
        Path(site.key).write_bytes(Path(issued.key).read_bytes())

    def served() -> list[str]:
        ctx = pki.client_context()
        ctx.check_hostname = False
        try:
            with TlsWire(port, ctx, None, timeout=2) as wire:
                return wire.peer_names()
        except OSError:
            return []

    install("old")
    port = free_port()
    config_file = tmp_path / "bascule.yaml"
    listener = {"name": "secure", "bind": f"127.0.0.1:{port}", "protocol": "https"}
    listener["tls"] = {"certificates": [site.entry()]}
    document = {
        "listeners": [listener],
        "routes": [{"name": "ok", "respond": {}}],
        "access_log": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    }
    config_file.write_text(json.dumps(document))
    command = [sys.executable, "-m", "bascule", "run", "-c", str(config_file)]
    proc = subprocess.Popen(
        [*command, "--pid-file", str(tmp_path / "pid")], stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: served() == ["old.test"], timeout=15)
        install("new")
        proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: served() == ["new.test"], timeout=10)
        Path(site.cert).write_text("garbage\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert served() == ["new.test"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    assert f"certificate {site.cert}: not a PEM certificate" in stderr


def test_every_worker_resumes_a_session_another_one_started(pki, certs, tmp_path):
    """The supervisor makes the TLS contexts before forking: one session-ticket key for all
    workers, so a client resumes on whichever worker accepts its next connection."""
    port = free_port()
    listener = {"name": "secure", "bind": f"127.0.0.1:{port}", **https(certs)}
    document = {
        "workers": 2,
        "listeners": [listener],
        "routes": [{"name": "ok", "respond": {}}],
        "access_log": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    }
    config_file = tmp_path / "bascule.yaml"
    config_file.write_text(json.dumps(document))
    command = [sys.executable, "-m", "bascule", "run", "-c", str(config_file)]
    proc = subprocess.Popen(
        [*command, "--pid-file", str(tmp_path / "pid")], stderr=subprocess.DEVNULL
    )
    ctx = pki.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def handshake(session: ssl.SSLSession | None = None) -> tuple[ssl.SSLSession, bool] | None:
        """(the session to resume next time, whether this one was resumed)"""
        try:
            with TlsWire(port, ctx, "a.test", session=session, timeout=2) as wire:
                assert wire.get(host="a.test").status == 200
                return wire.tls.session, wire.tls.session_reused
        except OSError:
            return None

    try:
        assert wait_until(lambda: handshake() is not None, timeout=15)
        first = handshake()
        assert first is not None
        resumed = [handshake(first[0]) for _ in range(20)]
        assert all(r is not None and r[1] for r in resumed), resumed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
