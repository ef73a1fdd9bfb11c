"""The PROXY protocol (HAProxy's, versions 1 and 2): a header a balancer sends before the
first byte of a connection to say whose connection it really is.

Sans-IO: `encode` builds the header Bascule sends to a target (`proxy_protocol: v1|v2` on
an upstream); `parse` reads one from the first bytes a downstream balancer sent
(`proxy_protocol: accept` on a listener).

Rules:

1. `parse` returns the header once it is complete; while the bytes so far are a valid
   beginning of one, the number of bytes to wait for before calling it again (so a client
   sending a byte at a time costs no more than one sending it whole); and it raises
   `ProxyHeaderError` as soon as they cannot be one. It never reads past the header: what
   follows belongs to the client.
2. A header is bounded: a v1 line is at most 107 bytes (the spec's limit), a v2 header at
   most 16 + 65535 bytes (its length field's range).
3. A v2 `LOCAL` header (the balancer's own health check) and a v1 `UNKNOWN` one name
   nobody: the connection's own peer stays the client. TLVs after the v2 addresses are
   skipped.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["SIGNATURE_V2", "Address", "ProxyHeader", "ProxyHeaderError", "encode", "parse"]

Address = tuple[str, int]
"""An IP address (text, no brackets or scope) and a port."""

SIGNATURE_V2 = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_PREFIX = b"PROXY "
MAX_V1 = 107  # "PROXY TCP6 " + two longest IPv6 addresses + two ports + CRLF
_V2_FIXED = 16  # signature, version/command, family/transport, length
_V2_VERSION = 0x20
_V2_LOCAL, _V2_PROXY = 0x0, 0x1
_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM, _DGRAM = 0x1, 0x2
_INET_ADDRESSES = struct.Struct("!4s4sHH")
_INET6_ADDRESSES = struct.Struct("!16s16sHH")


class ProxyHeaderError(ValueError):
    """The bytes are not a PROXY protocol header (the message says why)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header: `length` bytes long; `source` is the client and `destination` the
    address it connected to, both None when the header names nobody (LOCAL, UNKNOWN)."""

    length: int
    source: Address | None
    destination: Address | None
    version: int


def parse(data: bytes) -> ProxyHeader | int:
    """The header at the start of `data`, or how many bytes to wait for (rule 1)."""
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    if not data:
        return 1
    raise _not_a_header(data)


def _parse_v1(data: bytes) -> ProxyHeader | int:
    if not data.startswith(_V1_PREFIX[: len(data)]):
        raise _not_a_header(data)
    end = data.find(b"\r\n", 0, MAX_V1)
    if end == -1:
        if len(data) >= MAX_V1:
            raise ProxyHeaderError(f"a v1 header line is longer than {MAX_V1} bytes")
        if b"\n" in data:
            raise ProxyHeaderError("a v1 header line ends with a bare LF, not CRLF")
        return len(data) + 1
    fields = data[:end].split(b" ")
    length = end + 2
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return ProxyHeader(length, None, None, 1)  # the rest of the line is to be ignored
    if len(fields) != 6:
        raise ProxyHeaderError(
            "a v1 header is `PROXY TCP4|TCP6 source destination sport dport`; "
            f"got {_shown(data[:end])}"
        )
    _, family, source, destination, source_port, destination_port = fields
    if family not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"unknown v1 protocol {_shown(family)}; expected TCP4 or TCP6")
    version = 4 if family == b"TCP4" else 6
    return ProxyHeader(
        length,
        (_v1_ip(source, version), _v1_port(source_port)),
        (_v1_ip(destination, version), _v1_port(destination_port)),
        1,
    )


def _v1_ip(text: bytes, version: int) -> str:
    try:
        ip = ipaddress.ip_address(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise ProxyHeaderError(f"{_shown(text)} is not an IP address") from None
    if ip.version != version:
        raise ProxyHeaderError(f"{_shown(text)} is not an IPv{version} address")
    return str(ip)


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise ProxyHeaderError(f"{_shown(text)} is not a port number")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | int:
    signature = data[: len(SIGNATURE_V2)]
    if not SIGNATURE_V2.startswith(signature):
        raise _not_a_header(data)
    if len(data) < _V2_FIXED:
        return _V2_FIXED
    version_command, family_transport = data[12], data[13]
    if version_command & 0xF0 != _V2_VERSION:
        raise ProxyHeaderError(f"unknown v2 version {version_command >> 4}; expected 2")
    command = version_command & 0x0F
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError(f"unknown v2 command {command}; expected LOCAL or PROXY")
    body_length = int.from_bytes(data[14:16], "big")
    length = _V2_FIXED + body_length
    if len(data) < length:
        return length
    if command == _V2_LOCAL:
        return ProxyHeader(length, None, None, 2)
    family, transport = family_transport >> 4, family_transport & 0x0F
    if transport == _DGRAM:
        raise ProxyHeaderError("the v2 header is for a UDP connection, and this one is TCP")
    if family in (_AF_UNSPEC, _AF_UNIX) or transport != _STREAM:
        return ProxyHeader(length, None, None, 2)  # nobody we could name by address
    if family == _AF_INET:
        layout = _INET_ADDRESSES
    elif family == _AF_INET6:
        layout = _INET6_ADDRESSES
    else:
        raise ProxyHeaderError(f"unknown v2 address family {family}")
    if body_length < layout.size:
        raise ProxyHeaderError(
            f"the v2 header's addresses need {layout.size} bytes; it has {body_length}"
        )
    source, destination, source_port, destination_port = layout.unpack_from(data, _V2_FIXED)
    return ProxyHeader(
        length,
        (str(ipaddress.ip_address(source)), source_port),
        (str(ipaddress.ip_address(destination)), destination_port),
        2,
    )


def encode(version: int, source: Address | None, destination: Address | None) -> bytes:
    """The header that tells a target `source` connected to `destination` (v1 or v2).

    Without both addresses, or with addresses that are not IP (a Unix socket), the header
    names nobody: v1 `UNKNOWN`, v2 `LOCAL`. An IPv4 and an IPv6 address are both written
    as IPv6 (the IPv4 one mapped), since a header has one family.
    """
    ips = _pair(source, destination)
    if version == 1:
        if ips is None:
            return b"PROXY UNKNOWN\r\n"
        (src, dst), family = ips
        assert source is not None and destination is not None
        return b"PROXY %s %s %s %d %d\r\n" % (
            family,
            str(src).encode(),
            str(dst).encode(),
            source[1],
            destination[1],
        )
    if version != 2:
        raise ValueError(f"PROXY protocol version {version}; expected 1 or 2")
    if ips is None:
        return SIGNATURE_V2 + bytes((_V2_VERSION | _V2_LOCAL, 0)) + b"\x00\x00"
    (src, dst), family = ips
    assert source is not None and destination is not None
    layout, code = (
        (_INET_ADDRESSES, _AF_INET) if family == b"TCP4" else (_INET6_ADDRESSES, _AF_INET6)
    )
    body = layout.pack(src.packed, dst.packed, source[1], destination[1])
    head = bytes((_V2_VERSION | _V2_PROXY, code << 4 | _STREAM))
    return SIGNATURE_V2 + head + struct.pack("!H", len(body)) + body


_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _pair(
    source: Address | None, destination: Address | None
) -> tuple[tuple[_IP, _IP], bytes] | None:
    """Both addresses in one family, with its v1 name; None if either is not an IP."""
    if source is None or destination is None:
        return None
    try:
        src = _unmapped(ipaddress.ip_address(source[0].partition("%")[0]))
        dst = _unmapped(ipaddress.ip_address(destination[0].partition("%")[0]))
    except ValueError:
        return None
    if src.version == dst.version:
        return (src, dst), b"TCP4" if src.version == 4 else b"TCP6"
    return (_mapped(src), _mapped(dst)), b"TCP6"


def _unmapped(ip: _IP) -> _IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _mapped(ip: _IP) -> ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address):
        return ip
    return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + ip.packed)


def _not_a_header(data: bytes) -> ProxyHeaderError:
    return ProxyHeaderError(f"the connection does not start with a PROXY header but {_shown(data)}")


def _shown(data: bytes, limit: int = 24) -> str:
    """A short, printable rendering of the start of `data` for a log line."""
    shown = repr(data[:limit])
    return shown + "..." if len(data) > limit else shown
