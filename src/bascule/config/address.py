"""`host:port` addresses for listener binds, the admin bind and upstream targets, and
CIDR networks (`10.0.0.0/8`, `::1/128`) for client address rules.

An address is parsed once, at load time, into a `BindAddress` so the engine never splits
strings: `listener.bind.host` is ready for `socket.bind` / `loop.create_server` (IPv6
without brackets, e.g. "::1"), `listener.bind.port` is an int, and `str(listener.bind)`
gives back the operator's spelling ("[::1]:8080") for logs and errors. In YAML and JSON an
address is always the string form.
"""

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from bascule.config.syntax import is_hostname

__all__ = ["Address", "BindAddress", "Cidr", "parse_address"]

_BRACKETED = re.compile(r"\[(?P<host>[^\]]*)\]:(?P<port>[^:]*)")
_EXAMPLES = "127.0.0.1:8080, 0.0.0.0:80, localhost:8080, [::1]:8080 or [::]:8080"


@dataclass(frozen=True, slots=True)
class BindAddress:
    """A parsed `host:port`; `host` is a hostname, an IPv4 or a bare (unbracketed) IPv6."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> tuple[str, int]:
    """Split and check "host:port"; raises ValueError with the fix in its message."""
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port_text = bracketed.group("host"), bracketed.group("port")
        _check_ipv6(host, text)
    else:
        host, separator, port_text = text.rpartition(":")
        if not separator:
            raise ValueError(f"expected host:port (like {_EXAMPLES}), got {text!r}")
        if ":" in host:
            raise ValueError(f"put an IPv6 address in brackets, like [::1]:8080; got {text!r}")
        if not host:
            raise ValueError(f"the host is missing; use 0.0.0.0:{port_text} to listen everywhere")
        if not is_hostname(host):
            raise ValueError(f"{host!r} is not a valid host name or IP address")
    return host, _port(port_text, text)


def _check_ipv6(host: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(f"{host!r} in {text!r} is not a valid IPv6 address") from None


def _port(port_text: str, text: str) -> int:
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"the port must be a number from 1 to 65535, got {port_text!r} in {text!r}"
        )
    return int(port_text)


def _to_bind_address(value: object) -> BindAddress:
    if isinstance(value, BindAddress):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a host:port string (like {_EXAMPLES}), got {value!r}")
    return BindAddress(*parse_address(value.strip()))


Address = Annotated[
    BindAddress,
    PlainValidator(_to_bind_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "host:port; IPv6 in brackets. Port 1-65535.",
            "examples": ["127.0.0.1:8080", "0.0.0.0:80", "localhost:8080", "[::]:8080"],
        }
    ),
]
"""A `BindAddress` that YAML writes as "host:port"."""


def _to_cidr(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a network like 10.0.0.0/8 or 2001:db8::/32, got {value!r}")
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a network; write an address or address/prefix, "
            "like 10.0.0.0/8, 192.168.1.7 or 2001:db8::/32"
        ) from None
    return str(network)


Cidr = Annotated[
    str,
    PlainValidator(_to_cidr),
    WithJsonSchema(
        {
            "type": "string",
            "description": "An IPv4 or IPv6 network; a bare address is /32 or /128.",
            "examples": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"],
        }
    ),
]
"""A network, normalized ("10.1.2.3/8" becomes "10.0.0.0/8")."""
