"""The client's address when Bascule sits behind other proxies (`trusted_proxies:`).

A peer in a trusted network is believed about who it forwards for: its X-Forwarded-For
(or, without one, RFC 7239 Forwarded `for=`) is read from the right, skipping addresses that
are themselves trusted proxies; the first one that is not is the client. This is nginx's
`real_ip_recursive on`. A peer outside those networks is the client, whatever it claims, so
nobody can pick their own address for logs, ip_hash or geo by sending a header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    __slots__ = ("_networks",)

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in cidrs
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: bytes) -> bool:
        """True if `address` (textual, e.g. b"10.0.0.1" or b"::1") is a trusted proxy."""
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)

    def client(self, peer: bytes, forwarded_for: bytes, forwarded: bytes | None) -> bytes:
        """The client address for a request that `peer` sent, given its X-Forwarded-For
        value (b"" when absent) and its Forwarded header (None when absent)."""
        if not self.trusts(peer):
            return peer
        if forwarded_for:
            hops = [h.strip() for h in forwarded_for.split(b",")]
        elif forwarded is not None:
            hops = _forwarded_for(forwarded)
        else:
            return peer
        client = peer
        for hop in reversed(hops):
            address = _bare_address(hop)
            if address is None:
                break  # a trusted proxy passed on something that is not an address
            client = address
            if not self.trusts(address):
                break
        return client


def _forwarded_for(header: bytes) -> list[bytes]:
    """The `for=` values of an RFC 7239 Forwarded header, in order."""
    hops = []
    for element in header.split(b","):
        for pair in element.split(b";"):
            key, _, value = pair.strip().partition(b"=")
            if key.lower() == b"for":
                hops.append(value.strip().strip(b'"'))
    return hops


def _bare_address(hop: bytes) -> bytes | None:
    """b"1.2.3.4", b"1.2.3.4:80", b"[::1]:80" or b"::1" as a bare address; None if not one."""
    if hop.startswith(b"["):
        hop = hop[1 : hop.find(b"]")]
    elif hop.count(b":") == 1:
        hop = hop.partition(b":")[0]
    try:
        ipaddress.ip_address(hop.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return hop
