"""Certificate, key and CA files as operators get them wrong: each problem names the file
and says what is wrong, before anything is served (`bascule check` runs these builds)."""

from __future__ import annotations

import datetime
import json
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID

from bascule.config import Config, load_text
from bascule.net.tls import certificate_names, client_context, problems, server_context


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("tls-files")
    ca = trustme.CA()
    made: dict[str, str] = {}
    for stem, name in (("a", "a.test"), ("b", "b.test")):
        leaf = ca.issue_cert(name)
        made[f"{stem}.pem"] = str(folder / f"{stem}.pem")
        made[f"{stem}.key"] = str(folder / f"{stem}.key")
        leaf.cert_chain_pems[0].write_to_path(made[f"{stem}.pem"])
        leaf.private_key_pem.write_to_path(made[f"{stem}.key"])
    made["ca.pem"] = str(folder / "ca.pem")
    ca.cert_pem.write_to_path(made["ca.pem"])
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = folder / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw"))
    )
    made["encrypted.key"] = str(encrypted)
    made["text"] = str(folder / "notes.txt")
    Path(made["text"]).write_text("not PEM at all\n")
    made["missing"] = str(folder / "missing.pem")
    return made


def https(*certificates: tuple[str, str], **tls: Any) -> Config:
    listener = {
        "name": "secure",
        "bind": "0.0.0.0:8443",
        "protocol": "https",
        "tls": {"certificates": [{"cert": c, "key": k} for c, k in certificates], **tls},
    }
    return load_text(json.dumps({"listeners": [listener]})).config


def upstream_tls(**tls: Any) -> Config:
    document = {
        "listeners": [{"name": "public", "bind": "0.0.0.0:8080"}],
        "routes": [{"name": "r", "upstream": "api"}],
        "upstreams": {"api": {"targets": [{"address": "10.0.0.1:443"}], "tls": tls}},
    }
    return load_text(json.dumps(document)).config


def test_usable_files_have_no_problems(files: dict[str, str]) -> None:
    config = https((files["a.pem"], files["a.key"]), (files["b.pem"], files["b.key"]))
    assert problems(config) == []
    assert isinstance(server_context(config.listeners[0]), ssl.SSLContext)


def test_every_unusable_certificate_is_reported_with_its_file_and_problem(
    files: dict[str, str],
) -> None:
    config = https(
        (files["missing"], files["a.key"]),
        (files["text"], files["a.key"]),
        (files["a.key"], files["a.key"]),
        (files["a.pem"], files["a.pem"]),
        (files["a.pem"], files["encrypted.key"]),
        (files["a.pem"], files["b.key"]),
        client_ca=files["text"],
    )
    where = "listener 'secure'"
    assert problems(config) == [
        f"{where}: certificate {files['missing']}: cannot read: No such file or directory",
        f"{where}: certificate {files['text']}: not a PEM certificate "
        "(-----BEGIN CERTIFICATE-----): none found",
        f"{where}: certificate {files['a.key']}: not a PEM certificate "
        "(-----BEGIN CERTIFICATE-----): it holds a private key",
        f"{where}: key {files['a.pem']}: not a PEM private key (-----BEGIN PRIVATE KEY-----): "
        "it holds a certificate",
        f"{where}: key {files['encrypted.key']}: the key is encrypted; give Bascule the key "
        "without a passphrase",
        f"{where}: key {files['b.key']} and certificate {files['a.pem']} cannot be used "
        "together: key values mismatch",
    ]


def test_a_bad_client_ca_is_reported(files: dict[str, str]) -> None:
    config = https((files["a.pem"], files["a.key"]), client_ca=files["text"])
    assert problems(config) == [
        f"listener 'secure': client_ca {files['text']}: not a PEM certificate "
        "(-----BEGIN CERTIFICATE-----): none found"
    ]


def test_an_unknown_cipher_list_is_reported(files: dict[str, str]) -> None:
    config = https((files["a.pem"], files["a.key"]), ciphers="NOT-A-CIPHER")
    assert problems(config) == [
        "listener 'secure': ciphers 'NOT-A-CIPHER' names no cipher OpenSSL knows"
    ]


def test_upstream_tls_files_are_reported(files: dict[str, str]) -> None:
    config = upstream_tls(ca=files["missing"], cert=files["a.pem"], key=files["b.key"])
    assert problems(config) == [
        f"upstream 'api': tls.ca {files['missing']}: cannot read: No such file or directory",
        f"upstream 'api': tls.key {files['b.key']} and tls.cert {files['a.pem']} cannot be "
        "used together: key values mismatch",
    ]
    assert problems(upstream_tls(ca=files["ca.pem"], cert=files["a.pem"], key=files["a.key"])) == []


def test_an_upstream_without_verify_checks_nothing() -> None:
    spec = upstream_tls(verify=False).upstreams["api"].tls
    assert spec is not None
    ctx = client_context("api", spec)
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_NONE, False)


def test_a_certificate_that_adds_no_name_is_logged_as_never_chosen(
    files: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    config = https((files["a.pem"], files["a.key"]), (files["a.pem"], files["a.key"]))
    with caplog.at_level(logging.WARNING, logger="bascule"):
        server_context(config.listeners[0])
    assert f"certificate {files['a.pem']} is never chosen" in caplog.text


def test_a_certificate_without_subject_alt_names_is_for_its_common_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Legacy.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert certificate_names(cert) == ["legacy.test"]
