"""The `geo:` block of an upstream: where clients are, and which regions serve them."""

import ipaddress
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from bascule.config.section import Section

__all__ = ["Cidr", "Geo", "GeoDatabase"]

DEFAULT_FIELD = "country.iso_code"


def _check_cidr(text: str) -> str:
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
        address = ipaddress.ip_address(text.strip().partition("/")[0])
    except ValueError:
        raise ValueError(
            f"{text!r} is not a network; write it as 10.1.0.0/16 or 2001:db8::/32"
        ) from None
    if address != network.network_address:
        raise ValueError(f"{text!r} has bits set past its prefix; did you mean {network}?")
    return str(network)


def _check_field(field: str) -> str:
    parts = field.split(".")
    if not field or not all(part.replace("_", "a").isalnum() and part.isascii() for part in parts):
        raise ValueError(
            f"{field!r} is not a field path; write dotted keys such as country.iso_code, "
            "continent.code or subdivisions.0.iso_code"
        )
    return field


def _path_or_mapping(value: object) -> object:
    return {"path": value} if isinstance(value, str) else value


def _path_allowed(schema: dict[str, Any]) -> None:
    """YAML may give the database as its path alone."""
    schema["anyOf"].insert(0, {"type": "string", "description": "Path to the .mmdb file."})


Cidr = Annotated[str, AfterValidator(_check_cidr)]
"""An IPv4 or IPv6 network ("10.1.0.0/16", "2001:db8::/32"); a bare address is a /32 or /128."""


class GeoDatabase(Section):
    """A MaxMind-format database (.mmdb: GeoLite2 or GeoIP2 Country or City, or your own)."""

    path: str = Field(description="Path to the .mmdb file, read when Bascule starts.")
    field: Annotated[str, AfterValidator(_check_field)] = Field(
        default=DEFAULT_FIELD,
        description="Dotted path of the value in an address's record: country.iso_code "
        "(DE), continent.code (EU), subdivisions.0.iso_code.",
    )
    regions: dict[str, list[str]] | None = Field(
        default=None,
        description="Region -> the field values that mean it ({eu-west: [DE, FR]}); "
        "without it the value is the region name.",
    )


class Geo(Section):
    """Where clients are (CIDRs first, then the database) and the fallback regions."""

    client_regions: dict[str, list[Cidr]] = Field(
        default_factory=dict,
        description="Region -> client networks; the longest matching prefix wins.",
    )
    mmdb: Annotated[GeoDatabase | None, BeforeValidator(_path_or_mapping)] = Field(
        default=None,
        description="A MaxMind-format database, for clients no CIDR covers: its path, or "
        "{path, field, regions}.",
        json_schema_extra=_path_allowed,
    )
    fallback: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Client region -> regions to try, in order, when its own has no "
        "available target; then any target.",
    )
