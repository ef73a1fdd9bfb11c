"""The request target (RFC 9112 §3.2) as routes see it and targets receive it.

1. Origin-form (`/path?query`) is the usual one. Its path is normalized before anything
   looks at it: percent-encoded unreserved characters (`%2e`, `%41`) are decoded, since
   they mean the same URI (RFC 3986 §6.2.2.2), then dot-segments are removed (§5.2.4). Other
   percent-encodings stay as sent: `%2f` is never a slash to a route. A path that climbs
   above `/` is refused. The query is never touched.
2. Absolute-form (`http://host:port/path?query`) must be accepted by a server (§3.2.2): its
   authority is the request's host, and it is forwarded in origin-form.
3. Asterisk-form (`*`) passes for OPTIONS only; authority-form is CONNECT's, refused anyway.
"""

from __future__ import annotations

import re
from typing import Final

from bascule.http.errors import HttpError

__all__ = ["normalize_path", "parse_absolute_form", "valid_host"]

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ABSOLUTE = re.compile(rb"(?i:https?)://([^/?#]*)([^#]*)")
# reg-name, IPv4 or an IP literal in brackets, and a port: RFC 3986 §3.2.2 characters only
_NOT_HOST = re.compile(rb"[^A-Za-z0-9\-._~!$&'()*+,;=%:\[\]]")
# Host values found valid, so a repeated one costs a dict lookup, not a scan (its hash is
# computed once: the router looks the same bytes up). Bounded as the router's own memo.
_VALID_HOSTS: Final[dict[bytes, bool]] = {}
_VALID_HOSTS_ENTRIES: Final = 4096
_VALID_HOST_BYTES: Final = 262  # a 253-byte DNS name plus ":65535" and a trailing dot


def _unescape_unreserved(match: re.Match[bytes]) -> bytes:
    value = int(match.group(1), 16)
    return bytes((value,)) if value in _UNRESERVED else match.group(0)


def normalize_path(path: bytes) -> bytes:
    """`path` (origin-form, no query) with unreserved escapes decoded and dot-segments
    removed: `/a/./b/../c` -> `/a/c`, `/a/%2E%2e/b` -> `/b`. Raises HttpError 400 for a
    path that climbs above the root."""
    # What makes a path need normalizing: an escape, or a segment that starts with a dot.
    # (`partition`, not `find`: on CPython 3.11 its argument parsing costs a third.)
    escaped = path.partition(b"%")[1]
    if not escaped and not path.partition(b"/.")[1]:
        return path
    if escaped:
        path = _ESCAPE.sub(_unescape_unreserved, path)
    if path.find(b"/.") < 0:
        return path
    segments = path.split(b"/")
    last = len(segments) - 1
    out: list[bytes] = []
    for i in range(1, last + 1):
        segment = segments[i]
        if segment == b"." or segment == b"..":
            if segment == b"..":
                if not out:
                    raise HttpError(400, "the request path climbs above /")
                out.pop()
            if i == last:
                out.append(b"")  # `/a/.` and `/a/b/..` both name the directory `/a/`
        else:
            out.append(segment)
    return b"/" + b"/".join(out)


def valid_host(host: bytes) -> bool:
    """A Host value (or an absolute-form authority) made of the characters a host and port
    may have; anything else (a space, a control byte, UTF-8) is refused, never forwarded."""
    if _VALID_HOSTS.get(host) is not None:
        return True
    if _NOT_HOST.search(host) is not None:
        return False
    if len(host) <= _VALID_HOST_BYTES:
        if len(_VALID_HOSTS) >= _VALID_HOSTS_ENTRIES:
            _VALID_HOSTS.clear()  # forget junk rather than keep it forever
        _VALID_HOSTS[host] = True
    return True


def parse_absolute_form(method: bytes, target: bytes) -> tuple[bytes | None, bytes]:
    """The (authority, origin-form target) of a target that does not start with `/`; the
    authority is None for `*`.

    Raises HttpError 400 for anything but an absolute http(s) URI, or `*` with OPTIONS.
    """
    if target == b"*" and method == b"OPTIONS":
        return None, target
    match = _ABSOLUTE.fullmatch(target)
    if match is None:
        raise HttpError(400, "the request target is not a path or an absolute http URI")
    authority, rest = match.groups()
    if not authority or authority.find(b"@") >= 0 or not valid_host(authority):
        raise HttpError(400, "the request target's authority is not a host[:port]")
    if rest[:1] != b"/":
        rest = b"/" + rest  # `http://host` or `http://host?q`: the root
    return authority, rest
