"""Listeners: where Bascule accepts connections, and the limits that protect it there."""

from typing import Literal, Self

from pydantic import Field, model_validator

from bascule.config.address import Address
from bascule.config.section import Section
from bascule.config.syntax import Name
from bascule.config.tcp import ProxyProtocolAccept, SniRoutes
from bascule.config.tls import OptionalHsts, OptionalRedirectHttps, TlsVersion
from bascule.config.units import Duration, Size

__all__ = ["Certificate", "Listener", "ListenerLimits", "ListenerTimeouts", "Tls"]

KIB = 1024
MIB = 1024 * KIB


class ListenerTimeouts(Section):
    """How long a client may keep a connection busy without making progress (slowloris)."""

    header: Duration = Field(
        default=10.0, description="The whole request head must arrive within this."
    )
    keepalive: Duration = Field(
        default=75.0,
        description="How long an idle keep-alive connection stays open between requests.",
    )
    body: Duration = Field(
        default=60.0, description="The longest pause allowed between two chunks of a request body."
    )
    idle: Duration = Field(
        default=600.0,
        description="tcp only: a connection with no bytes either way for this long is closed.",
    )
    preread: Duration = Field(
        default=10.0,
        description="tcp only: the PROXY protocol header and, with sni_routes, the TLS "
        "ClientHello must arrive within this.",
    )


class ListenerLimits(Section):
    """Caps on what one request may make Bascule buffer or forward."""

    max_header_bytes: Size = Field(
        default=16 * KIB, description="Largest request head (request line and headers); else 431."
    )
    max_uri_bytes: Size = Field(default=8 * KIB, description="Longest request target; else 414.")
    max_body_bytes: Size = Field(default=100 * MIB, description="Largest request body; else 413.")


class Certificate(Section):
    """One certificate chain and its private key, both PEM file paths."""

    cert: str = Field(description="Path to the PEM certificate chain.")
    key: str = Field(description="Path to the PEM private key.")


class Tls(Section):
    """TLS for an https listener; the certificate is chosen by SNI, the first is the default."""

    certificates: list[Certificate] = Field(
        min_length=1,
        description="Chosen by the name the client asks for (SNI), from each certificate's "
        "own names; the first is the default.",
    )
    min_version: TlsVersion = Field(default="1.2", description="The oldest TLS version accepted.")
    ciphers: str | None = Field(
        default=None,
        description="OpenSSL cipher list for TLS 1.2; none: ECDHE with AES-GCM or ChaCha20 "
        "only. TLS 1.3's suites are all modern and not configurable.",
    )
    client_ca: str | None = Field(
        default=None,
        description="PEM file of the CAs whose client certificates are accepted (mTLS).",
    )
    verify_client: Literal["required", "optional"] = Field(
        default="required",
        description="With client_ca: required refuses clients without a valid certificate; "
        "optional lets them in without one (a certificate given must still be valid).",
    )

    @model_validator(mode="after")
    def _verify_needs_ca(self) -> Self:
        # By value, not by presence: a dumped config holds every key, and must load back.
        if self.verify_client != "required" and self.client_ca is None:
            raise ValueError("verify_client applies to client certificates: add `client_ca`")
        return self


class Listener(Section):
    """An address Bascule accepts on, with its protocol.

    `upstream` is only for tcp listeners, which skip routing; https listeners need `tls`.
    Those rules span keys, so `bascule.config.checks` enforces them with precise locations.
    """

    name: Name
    bind: Address = Field(description="host:port to listen on; [::]:8080 for IPv6.")
    protocol: Literal["http", "https", "tcp"] = "http"
    timeouts: ListenerTimeouts = ListenerTimeouts()
    limits: ListenerLimits = ListenerLimits()
    tls: Tls | None = None
    upstream: str | None = Field(
        default=None,
        description="tcp only: the upstream connections are piped to (with sni_routes: "
        "those whose server name no route matches).",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="tcp only: connections open at once; more are closed at once (and "
        "logged). None: no limit but open files.",
    )
    proxy_protocol: ProxyProtocolAccept | None = Field(
        default=None,
        description="tcp only: accept: every connection must come from trusted_proxies and "
        "start with a PROXY protocol v1 or v2 header naming the client; others are refused.",
    )
    sni_routes: SniRoutes = Field(
        default_factory=dict,
        description="tcp only: TLS passthrough by server name: {name or *.suffix: upstream}, "
        "read from the ClientHello without terminating TLS; no match: `upstream`.",
    )
    redirect_https: OptionalRedirectHttps = Field(
        default=None,
        description="http only: answer every request with a redirect to https (301 for GET "
        "and HEAD, 308 otherwise); true, or {port: 8443}.",
    )
    hsts: OptionalHsts = Field(
        default=None,
        description="https only: send Strict-Transport-Security; true, or "
        "{max_age: 1y, include_subdomains: false, preload: false}.",
    )
