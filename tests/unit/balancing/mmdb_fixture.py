"""Write a tiny MaxMind DB (.mmdb) file, so the geo tests read a real database with the real
`maxminddb` reader instead of a mock.

Follows the MaxMind DB File Format Specification 2.0: a binary search tree over address
bits (IPv6 tree, 24-bit records; IPv4 networks live under ::/96, where readers look them
up), a 16-byte separator, the data section, then the metadata after its marker. Only what
the tests need: string, map, array and unsigned integers; networks must not nest.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_RECORD_BITS = 24

Value = str | int | dict[str, "Value"] | list["Value"]


def _control(kind: int, size: int) -> bytes:
    if size < 29:
        head, extra = size, b""
    elif size < 29 + 256:
        head, extra = 29, bytes([size - 29])
    else:
        head, extra = 30, struct.pack(">H", size - 285)
    if kind <= 7:
        return bytes([(kind << 5) | head]) + extra
    return bytes([head, kind - 7]) + extra


def _unsigned(kind: int, number: int) -> bytes:
    payload = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return _control(kind, len(payload)) + payload


def encode(value: Value, kind: int | None = None) -> bytes:
    """One value in the data section's encoding; ints are uint32 unless `kind` says."""
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, int):
        return _unsigned(kind or 6, value)
    if isinstance(value, dict):
        body = b"".join(encode(k) + encode(v) for k, v in value.items())
        return _control(7, len(value)) + body
    body = b"".join(encode(item) for item in value)
    return _control(11, len(value)) + body


def _bits(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[int]:
    if network.version == 4:
        number, length = int(network.network_address), 96 + network.prefixlen
        number_bits = [0] * 96 + [(number >> (31 - i)) & 1 for i in range(32)]
    else:
        number, length = int(network.network_address), network.prefixlen
        number_bits = [(number >> (127 - i)) & 1 for i in range(128)]
    return number_bits[:length]


def write_mmdb(path: Path, records: dict[str, Value]) -> Path:
    """`records`: network ("192.0.2.0/24", "2001:db8:1::/48") -> its record."""
    data = b""
    offsets: dict[str, int] = {}
    # Each node is [left, right]; a child is ("node", index), ("data", offset) or None.
    tree: list[list[tuple[str, int] | None]] = [[None, None]]
    for network_text, record in records.items():
        offsets[network_text] = len(data)
        data += encode(record)
        bits = _bits(ipaddress.ip_network(network_text))
        node = 0
        for bit in bits[:-1]:
            child = tree[node][bit]
            if child is None:
                tree.append([None, None])
                child = ("node", len(tree) - 1)
                tree[node][bit] = child
            assert child[0] == "node", f"{network_text} nests in another network"
            node = child[1]
        assert tree[node][bits[-1]] is None, f"{network_text} overlaps another network"
        tree[node][bits[-1]] = ("data", offsets[network_text])
    count = len(tree)

    def record_value(child: tuple[str, int] | None) -> int:
        if child is None:
            return count  # no data
        kind, number = child
        return number if kind == "node" else count + 16 + number

    section = b"".join(
        record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big")
        for left, right in tree
    )
    metadata = (
        _control(7, 9)
        + encode("node_count")
        + encode(count)
        + encode("record_size")
        + encode(_RECORD_BITS, kind=5)
        + encode("ip_version")
        + encode(6, kind=5)
        + encode("database_type")
        + encode("Bascule-Test")
        + encode("languages")
        + encode(["en"])
        + encode("binary_format_major_version")
        + encode(2, kind=5)
        + encode("binary_format_minor_version")
        + encode(0, kind=5)
        + encode("build_epoch")
        + encode(1_700_000_000, kind=9)
        + encode("description")
        + encode({"en": "Bascule geo test fixture"})
    )
    path.write_bytes(section + b"\x00" * 16 + data + _METADATA_MARKER + metadata)
    return path
