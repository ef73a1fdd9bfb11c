"""Choosing a certificate by server name, and reading names and subjects from certificates."""

from __future__ import annotations

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bascule.net.tls import NameIndex, certificate_names, subject_of


def index(*entries: tuple[str, str]) -> NameIndex[str]:
    names: NameIndex[str] = NameIndex()
    for name, value in entries:
        names.add(name, value)
    return names


def test_an_exact_name_wins_over_a_wildcard_that_also_matches() -> None:
    names = index(("*.example.test", "wild"), ("api.example.test", "api"))
    assert names.find("api.example.test") == "api"
    assert names.find("www.example.test") == "wild"


def test_a_wildcard_covers_exactly_one_more_label() -> None:
    names = index(("*.example.test", "wild"))
    assert names.find("a.example.test") == "wild"
    assert names.find("example.test") is None
    assert names.find("a.b.example.test") is None


def test_names_match_without_case_or_a_trailing_dot() -> None:
    names = index(("API.Example.test.", "api"))
    assert names.find("api.example.TEST") == "api"
    assert names.find("api.example.test.") == "api"


def test_the_first_certificate_given_a_name_keeps_it() -> None:
    names: NameIndex[str] = NameIndex()
    assert names.add("a.test", "first")
    assert not names.add("A.test", "second")
    assert names.find("a.test") == "first"


def test_an_unknown_or_single_label_name_finds_nothing() -> None:
    names = index(("*.test", "tld-wildcard"), ("a.test", "a"))
    assert names.find("unknown.example") is None
    assert names.find("localhost") is None


def leaf(*names: str, common_name: str | None = None, **kwargs: str) -> x509.Certificate:
    cert = trustme.CA().issue_cert(*names, common_name=common_name, **kwargs)
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())


def test_certificate_names_come_from_the_subject_alt_names() -> None:
    cert = leaf("A.test", "*.b.test", "127.0.0.1", common_name="ignored.test")
    assert certificate_names(cert) == ["a.test", "*.b.test"]  # IPs are never SNI names


def test_subject_is_rfc_4514_most_specific_first_and_header_safe() -> None:
    cert = leaf(
        "x.test", common_name="Élise, admin", organization_name="Ex", organization_unit_name="Ops"
    )
    subject = subject_of(cert.public_bytes(Encoding.DER))
    assert subject == b"CN=\\C3\\89lise\\, admin,OU=Ops,O=Ex"
