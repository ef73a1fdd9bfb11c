"""DNS discovery keys: a target's `srv:` name, and an upstream's `resolvers` and
`resolve_every` (docs/resilience.md#dns-discovery).

A target whose address is a host name, or that has `srv:`, is found in DNS while Bascule
runs; an IP address never is. The engine side is `bascule.upstream.discovery`.
"""

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema

from bascule.config.address import BindAddress
from bascule.config.syntax import is_hostname
from bascule.config.units import Duration

__all__ = ["DNS_PORT", "Nameserver", "ResolveEvery", "SrvName", "is_ip"]

DNS_PORT = 53
"""A resolver written without a port is asked on the standard DNS port."""


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 literal: an address that is never resolved."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_srv_name(name: str) -> str:
    text = name.strip()
    if is_ip(text) or not is_hostname(text):
        raise ValueError(
            f"{name!r} is not a DNS name; an SRV name looks like _http._tcp.example.com"
        )
    return text.lower()


SrvName = Annotated[
    str,
    AfterValidator(_check_srv_name),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A DNS name with SRV records, like _http._tcp.example.com.",
            "examples": ["_http._tcp.example.com"],
        }
    ),
]
"""The name whose SRV records list a service's hosts, ports and weights."""


def _to_nameserver(value: object) -> BindAddress:
    if isinstance(value, BindAddress):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address or ip:port, like 10.0.0.2, got {value!r}")
    text = value.strip()
    if is_ip(text):
        return BindAddress(text, DNS_PORT)
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not is_ip(host):
        raise ValueError(
            f"a resolver is an IP address, optionally with a port (10.0.0.2, "
            f"127.0.0.1:5353, [2001:db8::53]:53); got {value!r}"
        )
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, got {port!r} in {value!r}")
    return BindAddress(host, int(port))


Nameserver = Annotated[
    BindAddress,
    PlainValidator(_to_nameserver),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A DNS server's IP address, with :port when it is not 53.",
            "examples": ["10.0.0.2", "127.0.0.1:5353", "[2001:db8::53]:53"],
        }
    ),
]
"""A DNS server to ask; `.port` is 53 unless written."""


def _positive(seconds: float | None) -> float | None:
    if seconds is not None and seconds <= 0:
        raise ValueError("resolve_every must be longer than 0s; leave it out to follow TTLs")
    return seconds


ResolveEvery = Annotated[Duration | None, AfterValidator(_positive)]
"""Seconds between resolutions; None follows the records' TTLs."""
