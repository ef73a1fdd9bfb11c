"""Where a client is: its address to a region name, for the geo balancer.

Two sources, tried in order:

1. A CIDR table (`geo.client_regions`): region -> networks, IPv4 and IPv6. The longest
   matching prefix wins, so 10.1.2.0/24 can carve a region out of 10.1.0.0/16. A lookup is
   one dict probe per distinct prefix length in the table (at most 33 for IPv4, 129 for
   IPv6; a handful in practice).
2. A MaxMind-format database (`geo.mmdb`, GeoLite2/GeoIP2 Country or City, or any .mmdb)
   read with the `maxminddb` package. `field` is the dotted path of the value to use in
   the address's record (default `country.iso_code`, "DE"; `continent.code` gives "EU";
   `subdivisions.0.iso_code` a list element). `regions` maps region names to the values
   that mean them ({"eu-west": ["DE", "FR"]}); without it the value is the region name.

IPv4-mapped IPv6 addresses (::ffff:10.1.2.3) are looked up as IPv4. Recent answers are
cached (a bounded dict), since clients come back.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_FIELD", "MmdbRegions", "RegionLookup", "field_path"]

DEFAULT_FIELD = "country.iso_code"
CACHE_SIZE = 4096
"""Answers remembered; the cache is emptied when full (cheaper than an LRU per lookup)."""

_MAPPED_PREFIX = 0xFFFF << 32  # ::ffff:0:0/96


class Source(Protocol):
    """A region source for addresses that the CIDR table does not cover."""

    def region_of(self, address: str) -> str | None: ...


def field_path(field: str) -> tuple[str | int, ...]:
    """ "subdivisions.0.iso_code" -> ("subdivisions", 0, "iso_code")."""
    parts = field.split(".")
    if not field or any(not part for part in parts):
        raise ValueError(f"a field is dotted names, like {DEFAULT_FIELD}; got {field!r}")
    return tuple(int(part) if part.isdigit() else part for part in parts)


@dataclass
class MmdbRegions:
    """Regions from a MaxMind DB file: the value at `field` in an address's record."""

    path: str
    field: str = DEFAULT_FIELD
    regions: Mapping[str, Sequence[str]] | None = None

    def __post_init__(self) -> None:
        import maxminddb  # only when a database is configured

        self._path = field_path(self.field)
        self._reader = maxminddb.open_database(self.path)
        self._names: dict[str, str] | None = None
        if self.regions is not None:
            self._names = {
                value: region for region, values in self.regions.items() for value in values
            }

    def region_of(self, address: str) -> str | None:
        try:
            node: object = self._reader.get(address)
        except ValueError:  # not an address, or IPv6 in an IPv4-only database
            return None
        for part in self._path:
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                node = node[part]
            elif isinstance(part, str) and isinstance(node, dict):
                node = node.get(part)
            else:
                return None
        if not isinstance(node, str):
            return None
        return node if self._names is None else self._names.get(node)

    def close(self) -> None:
        self._reader.close()


class RegionLookup:
    """Client address (text bytes, as PickContext.client_ip) -> region name or None."""

    __slots__ = ("_cache", "_lengths", "_source", "_tables")

    def __init__(
        self,
        networks: Mapping[str, Sequence[str]] | None = None,
        source: Source | None = None,
    ) -> None:
        """`networks`: region -> CIDRs ("10.1.0.0/16", "2001:db8::/32"); a CIDR in two
        regions is an error. `source`: asked for addresses no CIDR covers."""
        self._source = source
        # Per family (4, 6): prefix length -> {network bits: region}, and the lengths
        # present, longest first.
        self._tables: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        for region, cidrs in (networks or {}).items():
            for cidr in cidrs:
                network = ipaddress.ip_network(cidr, strict=False)
                width = network.max_prefixlen
                bits = int(network.network_address) >> (width - network.prefixlen)
                table = self._tables[network.version].setdefault(network.prefixlen, {})
                if table.get(bits, region) != region:
                    raise ValueError(f"{network} is in two regions: {table[bits]} and {region}")
                table[bits] = region
        self._lengths = {
            version: sorted(table, reverse=True) for version, table in self._tables.items()
        }
        self._cache: dict[bytes, str | None] = {}

    def region_of(self, address: bytes) -> str | None:
        cache = self._cache
        if address in cache:
            return cache[address]
        region = self._lookup(address)
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[address] = region
        return region

    def _lookup(self, address: bytes) -> str | None:
        try:
            text = address.decode("ascii").partition("%")[0]  # drop an IPv6 zone
            if ":" in text:
                number = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
                version, width = 6, 128
                if number >> 32 == _MAPPED_PREFIX >> 32:
                    number &= 0xFFFFFFFF
                    version, width = 4, 32
                    text = str(ipaddress.IPv4Address(number))
            else:
                number = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
                version, width = 4, 32
        except (UnicodeDecodeError, OSError, ValueError):
            return None
        table = self._tables[version]
        for length in self._lengths[version]:
            region = table[length].get(number >> (width - length))
            if region is not None:
                return region
        if self._source is not None:
            return self._source.region_of(text)
        return None
