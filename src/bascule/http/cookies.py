"""Cookies as a proxy needs them: one value out of a Cookie header, one name=value out of a
Set-Cookie header. Values stay raw bytes; nothing is decoded or unquoted beyond RFC 6265's
optional double quotes.
"""

from __future__ import annotations


def cookie_value(cookie_header: bytes, name: bytes) -> bytes | None:
    """The value of cookie `name` in a Cookie header ("a=1; b=2"), or None.

    Names compare exactly (cookie names are case-sensitive); the first occurrence wins, as
    browsers send the most specific cookie first.
    """
    for pair in cookie_header.split(b";"):
        key, sep, value = pair.partition(b"=")
        if sep and key.strip() == name:
            return _unquote(value.strip())
    return None


def set_cookie_pair(set_cookie_value: bytes) -> tuple[bytes, bytes] | None:
    """The (name, value) a Set-Cookie header sets, or None if it is malformed."""
    pair = set_cookie_value.split(b";", 1)[0]
    name, sep, value = pair.partition(b"=")
    name = name.strip()
    if not sep or not name:
        return None
    return name, _unquote(value.strip())


def _unquote(value: bytes) -> bytes:
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        return value[1:-1]
    return value


def query_arg(query: bytes, name: bytes) -> bytes | None:
    """The raw value of the first `name` argument in a query string ("a=1&b=2"), or None.

    A bare `name` (no "=") has the empty value, as nginx's $arg_ gives.
    """
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name:
            return value
    return None
