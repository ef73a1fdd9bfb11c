"""Keys of tcp listeners and of the upstreams they send to: the PROXY protocol, and routing
TLS connections by the server name of their ClientHello (`sni_routes`)."""

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator

from bascule.config.syntax import Name, check_host_pattern

__all__ = ["ProxyProtocolAccept", "ProxyProtocolVersion", "ServerName", "SniRoutes"]

ProxyProtocolAccept = Literal["accept"]
"""A listener's `proxy_protocol`: read a v1 or v2 header from trusted peers."""

ProxyProtocolVersion = Literal["v1", "v2"]
"""An upstream's `proxy_protocol`: the header version sent to its targets."""


def _check_server_name(pattern: str) -> str:
    name = check_host_pattern(pattern)
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name
    raise ValueError(
        f"{pattern!r} is an IP address; TLS clients send host names only (RFC 6066), so a "
        "connection to an address has no server name and goes to the listener's `upstream`"
    )


ServerName = Annotated[str, AfterValidator(_check_server_name)]
"""An exact server name or a `*.example.com` wildcard, lower-cased, no trailing dot."""

SniRoutes = dict[ServerName, Name]
"""Server name (exact or wildcard) to upstream name."""
