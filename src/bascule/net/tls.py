"""TLS contexts: for https listeners (a certificate chosen by SNI) and for upstreams whose
targets speak TLS.

Contexts are built from the config every time it is loaded — at start and on each reload —
so a renewed certificate is read again; nothing here is kept between builds. `problems`
runs the same builds for `bascule check`, so a file that cannot be used is reported before
it would be served, naming the file and what is wrong with it.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtensionOID, NameOID

from bascule import config as cfg
from bascule.config.tls import UpstreamTls

__all__ = [
    "ALPN",
    "MODERN_CIPHERS",
    "NameIndex",
    "TlsFileError",
    "certificate_names",
    "client_context",
    "client_subject",
    "describe_handshake_error",
    "problems",
    "server_context",
    "server_contexts",
    "subject_of",
]

log = logging.getLogger("bascule")

MODERN_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))  # fmt: skip
"""TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate" profile less
DHE, for which Python loads no parameters). TLS 1.3 suites are OpenSSL's, all modern."""

ALPN = ["http/1.1"]  # h2 joins when Bascule speaks HTTP/2

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_OPENSSL_NOISE = re.compile(r"^\[[A-Z0-9_]+: [A-Z0-9_]+\] | \(_ssl\.c:\d+\)$")

T = TypeVar("T")


class TlsFileError(Exception):
    """Certificate, key or CA files that cannot be used; one message per problem, each
    naming the file and what is wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class NameIndex(Generic[T]):
    """Server names to what serves them: exact names first, then wildcards.

    `*.example.com` matches one label more (`a.example.com`), not `example.com` and not
    `a.b.example.com` (RFC 6125 §6.4.3, as browsers match certificates). Names are compared
    lower-case without a trailing dot; the first value given a name keeps it.
    """

    __slots__ = ("_exact", "_wildcard")

    def __init__(self) -> None:
        self._exact: dict[str, T] = {}
        self._wildcard: dict[str, T] = {}  # by the suffix after "*."

    def add(self, name: str, value: T) -> bool:
        """Index `value` under `name`; False if an earlier value has the name already."""
        name = name.lower().removesuffix(".")
        table, key = (self._wildcard, name[2:]) if name.startswith("*.") else (self._exact, name)
        if key in table:
            return False
        table[key] = value
        return True

    def find(self, server_name: str) -> T | None:
        name = server_name.lower().removesuffix(".")
        found = self._exact.get(name)
        if found is not None:
            return found
        _, dot, parent = name.partition(".")
        return self._wildcard.get(parent) if dot else None


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName entries, or without any, its
    common name (as clients fell back to before RFC 6125)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        return [n.lower() for n in names if isinstance(n, str)]
    assert isinstance(san.value, x509.SubjectAlternativeName)
    return [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]


# -- https listeners -----------------------------------------------------------------------


def server_context(listener: cfg.Listener) -> ssl.SSLContext:
    """The context an https listener accepts with: the first certificate's, choosing
    another certificate's context by SNI during the handshake. Raises TlsFileError."""
    tls = listener.tls
    assert tls is not None, "checked at load: an https listener has tls"
    where = f"listener {listener.name!r}"
    errors: list[str] = []
    index: NameIndex[ssl.SSLContext] = NameIndex()
    contexts: list[ssl.SSLContext] = []
    for position, certificate in enumerate(tls.certificates):
        try:
            ctx, names = _certificate_context(tls, certificate, where)
        except TlsFileError as exc:
            errors += exc.problems
            continue
        contexts.append(ctx)
        added = [index.add(name, ctx) for name in names]
        if position > 0 and not any(added):
            log.warning(
                "%s: certificate %s is never chosen: an earlier certificate has each of its "
                "names (%s)",
                where,
                certificate.cert,
                ", ".join(names) or "none",
            )
    if errors:
        raise TlsFileError(errors)
    default = contexts[0]
    if len(contexts) > 1:
        default.sni_callback = _sni_selector(index, default)
    return default


def server_contexts(config: cfg.Config) -> dict[str, ssl.SSLContext]:
    """A context per https listener, by listener name. Raises TlsFileError."""
    return {
        listener.name: server_context(listener)
        for listener in config.listeners
        if listener.protocol == "https"
    }


def _certificate_context(
    tls: cfg.Tls, certificate: cfg.Certificate, where: str
) -> tuple[ssl.SSLContext, list[str]]:
    chain = _pem_certificates(certificate.cert, f"{where}: certificate")
    _check_key(certificate.key, f"{where}: key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    try:
        ctx.set_ciphers(tls.ciphers or MODERN_CIPHERS)
    except ssl.SSLError:
        raise TlsFileError(
            [f"{where}: ciphers {tls.ciphers!r} names no cipher OpenSSL knows"]
        ) from None
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # client-started renegotiation is a DoS lever
    ctx.set_alpn_protocols(ALPN)
    try:
        ctx.load_cert_chain(certificate.cert, certificate.key)
    except ssl.SSLError as exc:
        raise TlsFileError(
            [
                f"{where}: key {certificate.key} and certificate {certificate.cert} cannot be "
                f"used together: {_reason(exc)}"
            ]
        ) from None
    if tls.client_ca is not None:
        _load_ca(ctx, tls.client_ca, f"{where}: client_ca")
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if tls.verify_client == "required" else ssl.CERT_OPTIONAL
        )
    _warn_if_expired(chain[0], certificate.cert, where)
    return ctx, certificate_names(chain[0])


def _sni_selector(
    index: NameIndex[ssl.SSLContext], default: ssl.SSLContext
) -> Callable[[ssl.SSLObject, str, ssl.SSLContext], None]:
    def on_server_name(conn: ssl.SSLObject, server_name: str, _: ssl.SSLContext) -> None:
        # No name, or one no certificate has: the handshake goes on with the default.
        if server_name:
            chosen = index.find(server_name)
            if chosen is not None and chosen is not default:
                conn.context = chosen

    return on_server_name


def client_subject(ssl_object: ssl.SSLObject | None) -> bytes | None:
    """The verified client certificate's subject as an RFC 4514 string ("CN=alice,O=Example"),
    safe for a header value; None when the client showed no certificate."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return subject_of(der) if der else None


def subject_of(der: bytes) -> bytes:
    """A DER certificate's subject, RFC 4514, in printable ASCII only."""
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    # RFC 4514 hex escapes for what a header value must not carry (controls, non-ASCII).
    return "".join(
        c if " " <= c <= "~" else "".join(f"\\{b:02X}" for b in c.encode()) for c in subject
    ).encode("ascii")


# -- upstreams -----------------------------------------------------------------------------


def client_context(upstream: str, tls: UpstreamTls) -> ssl.SSLContext:
    """The context Bascule connects to an upstream's targets with. Raises TlsFileError."""
    where = f"upstream {upstream!r}"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # TLS 1.2+, name and chain checked
    ctx.set_alpn_protocols(ALPN)
    errors: list[str] = []
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.ca is not None:
        try:
            _load_ca(ctx, tls.ca, f"{where}: tls.ca")
        except TlsFileError as exc:
            errors += exc.problems
    else:
        ctx.load_default_certs()
    if tls.cert is not None and tls.key is not None:
        try:
            _pem_certificates(tls.cert, f"{where}: tls.cert")
            _check_key(tls.key, f"{where}: tls.key")
            ctx.load_cert_chain(tls.cert, tls.key)
        except TlsFileError as exc:
            errors += exc.problems
        except ssl.SSLError as exc:
            errors.append(
                f"{where}: tls.key {tls.key} and tls.cert {tls.cert} cannot be used "
                f"together: {_reason(exc)}"
            )
    if errors:
        raise TlsFileError(errors)
    return ctx


def problems(config: cfg.Config) -> list[str]:
    """Every TLS file of `config` that cannot be used (built as the server would build it)."""
    found: list[str] = []
    for listener in config.listeners:
        if listener.protocol == "https" and listener.tls is not None:
            try:
                server_context(listener)
            except TlsFileError as exc:
                found += exc.problems
    for name, upstream in config.upstreams.items():
        if upstream.tls is not None:
            try:
                client_context(name, upstream.tls)
            except TlsFileError as exc:
                found += exc.problems
    return found


# -- reading files -------------------------------------------------------------------------


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsFileError([f"{what} {path}: cannot read: {exc.strerror or exc}"]) from None


def _pem_certificates(path: str, what: str) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        hint = "it holds a private key" if b"PRIVATE KEY-----" in data else "none found"
        raise TlsFileError(
            [f"{what} {path}: not a PEM certificate (-----BEGIN CERTIFICATE-----): {hint}"]
        ) from None


def _check_key(path: str, what: str) -> None:
    data = _read(path, what)
    try:
        load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsFileError(
            [f"{what} {path}: the key is encrypted; give Bascule the key without a passphrase"]
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = "it holds a certificate" if b"CERTIFICATE-----" in data else "none found"
        raise TlsFileError(
            [f"{what} {path}: not a PEM private key (-----BEGIN PRIVATE KEY-----): {hint}"]
        ) from None


def _load_ca(ctx: ssl.SSLContext, path: str, what: str) -> None:
    _pem_certificates(path, what)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise TlsFileError([f"{what} {path}: {_reason(exc)}"]) from None


def _warn_if_expired(cert: x509.Certificate, path: str, where: str) -> None:
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        log.warning(
            "%s: certificate %s expired on %s; clients will refuse it",
            where,
            path,
            cert.not_valid_after_utc.date(),
        )
    elif cert.not_valid_before_utc > now:
        log.warning(
            "%s: certificate %s is valid only from %s; clients will refuse it until then",
            where,
            path,
            cert.not_valid_before_utc.date(),
        )


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's words without its codes: "[SSL: X] key values mismatch (_ssl.c:1006)" →
    "key values mismatch"."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return _OPENSSL_NOISE.sub("", text) or text


def describe_handshake_error(exc: ssl.SSLError) -> str:
    """A failed handshake with a target, for a 502 body and the log."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: certificate verify failed: {exc.verify_message}"
    reason = _reason(exc)
    if reason == "wrong version number":  # the first bytes back were not a TLS record
        reason += " (does the target speak TLS on this port?)"
    return f"TLS handshake failed: {reason}"
