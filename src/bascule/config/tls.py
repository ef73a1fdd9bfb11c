"""TLS settings beyond the listener's certificates: versions, HSTS, the redirect of plain
HTTP to HTTPS, and TLS to targets (`upstreams.<name>.tls`).

Paths are kept as written; the files are read where contexts are built
(`bascule.net.tls`), which `bascule check` runs too, so a bad file is reported before a
start or reload rather than at the first handshake.
"""

import re
from typing import Annotated, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from bascule.config.section import Section
from bascule.config.syntax import is_hostname
from bascule.config.units import parse_duration

__all__ = [
    "HSTS_PRELOAD_MIN_AGE",
    "Hsts",
    "MaxAge",
    "OptionalHsts",
    "OptionalRedirectHttps",
    "OptionalUpstreamTls",
    "RedirectHttps",
    "TlsVersion",
    "UpstreamTls",
]

DAY = 86400
YEAR = 365 * DAY
HSTS_PRELOAD_MIN_AGE = YEAR
"""The shortest max_age the browsers' preload list accepts (hstspreload.org)."""

_DAYS = re.compile(r"\s*(\d+)\s*(d|y)\s*")


def _version(value: object) -> object:
    # YAML reads `min_version: 1.2` as a float; "1.2" and 1.2 mean the same here.
    return repr(value) if isinstance(value, float) else value


TlsVersion = Annotated[
    Literal["1.2", "1.3"],
    BeforeValidator(_version),
    WithJsonSchema({"enum": ["1.2", "1.3", 1.2, 1.3]}),
]
"""The oldest TLS version accepted. TLS 1.0 and 1.1 are not offered: RFC 8996 retired them."""


def _parse_max_age(value: object) -> float:
    if isinstance(value, str):
        match = _DAYS.fullmatch(value)
        if match:
            count = int(match.group(1))
            return float(count * (YEAR if match.group(2) == "y" else DAY))
    return parse_duration(value)


MaxAge = Annotated[
    float,
    BeforeValidator(_parse_max_age),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "Seconds."},
                {
                    "type": "string",
                    "description": "A duration (10s, 5m, 1h), or days (180d) or years "
                    "(1y = 365 days).",
                },
            ],
            "examples": ["1y", "180d", "1h"],
        }
    ),
]
"""Seconds; also written in days (`180d`) or years (`1y`), the units HSTS ages come in."""


def _true_is_defaults(value: object) -> object:
    """`key: true` is the block with every default; `false` is no block."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


class Hsts(Section):
    """Strict-Transport-Security on every response of an https listener (RFC 6797)."""

    max_age: MaxAge = Field(
        default=float(YEAR), description="How long browsers remember to use HTTPS only."
    )
    include_subdomains: bool = Field(default=False, description="The rule covers subdomains.")
    preload: bool = Field(
        default=False,
        description="Ask to be on the browsers' built-in HTTPS-only list (needs "
        "include_subdomains and max_age of at least 1y).",
    )

    @model_validator(mode="after")
    def _preload_rules(self) -> Self:
        if self.preload and (not self.include_subdomains or self.max_age < HSTS_PRELOAD_MIN_AGE):
            raise ValueError(
                "hsts preload needs include_subdomains: true and max_age of at least 1y; "
                "the preload list refuses anything less"
            )
        return self

    def header_value(self) -> str:
        """The Strict-Transport-Security value, e.g. "max-age=31536000; includeSubDomains"."""
        parts = [f"max-age={int(self.max_age)}"]
        if self.include_subdomains:
            parts.append("includeSubDomains")
        if self.preload:
            parts.append("preload")
        return "; ".join(parts)


class _OrBoolean:
    """Adds `true`/`false` to the schema of an optional block (see `_true_is_defaults`)."""

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        branches = schema.get("anyOf", [schema])
        boolean = {"type": "boolean", "description": "true: every default; false: off."}
        return {"anyOf": [boolean, *branches]}


OptionalHsts = Annotated[Hsts | None, BeforeValidator(_true_is_defaults), _OrBoolean()]


class RedirectHttps(Section):
    """Answer every request of an http listener with a redirect to the same URL in https."""

    port: int = Field(
        default=443, ge=1, le=65535, description="The https port redirected to (443 is omitted)."
    )


OptionalRedirectHttps = Annotated[
    RedirectHttps | None, BeforeValidator(_true_is_defaults), _OrBoolean()
]


class UpstreamTls(Section):
    """TLS to the targets of an upstream (https targets), optionally with a client
    certificate (mTLS to the target)."""

    verify: bool = Field(default=True, description="Check the target's certificate chain and name.")
    ca: str | None = Field(
        default=None,
        description="PEM file of the CAs trusted for the targets; none: the system's.",
    )
    sni: str | None = Field(
        default=None,
        description="The server name sent (SNI) and checked in the certificate; none: the "
        "target's host name (an IP target sends no SNI and its IP is checked).",
    )
    cert: str | None = Field(
        default=None, description="Client certificate chain (PEM) shown to targets that ask."
    )
    key: str | None = Field(default=None, description="The client certificate's key (PEM).")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both `cert` and `key`")
        if not self.verify and self.ca is not None:
            raise ValueError("`ca` has no effect with verify: false; remove one of them")
        if self.sni is not None and not is_hostname(self.sni):
            raise ValueError(f"sni {self.sni!r} is not a host name")
        return self


OptionalUpstreamTls = Annotated[
    UpstreamTls | None, BeforeValidator(_true_is_defaults), _OrBoolean()
]
