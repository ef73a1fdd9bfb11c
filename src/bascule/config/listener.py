"""Listeners: where Bascule accepts connections, and the limits that protect it there."""

from typing import Literal

from pydantic import Field

from bascule.config.address import Address
from bascule.config.section import Section
from bascule.config.syntax import Name
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

    certificates: list[Certificate] = Field(min_length=1)


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
        default=None, description="tcp only: the upstream every connection is piped to."
    )
