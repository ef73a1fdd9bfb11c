"""Host names: the request side (normalize a raw Host header) and the config side (parse a
route's host pattern). Both produce the same normal form, so matching is plain bytes equality.

Normal form: lower-case ASCII (IDNA for non-ASCII config names), no port, no trailing dot,
IPv6 literals in brackets (``[::1]``).
"""

from __future__ import annotations


def normalize_host(raw: bytes) -> bytes:
    """The host a raw Host header names: lower-cased, port and one trailing dot removed.

    ``b"API.Example.com:8080"`` → ``b"api.example.com"``; ``b"[::1]:8080"`` → ``b"[::1]"``;
    ``b""`` (no Host header) stays ``b""`` and so matches only routes without a host.
    A malformed value (``b"[::1"``) is returned lower-cased and matches no host pattern.
    """
    host = raw.lower()
    if host[:1] == b"[":
        end = host.find(b"]")
        return host if end == -1 else host[: end + 1]
    colon = host.find(b":")
    if colon != -1:
        host = host[:colon]
    # `example.com.` is the fully qualified spelling of `example.com` (as nginx treats it).
    return host[:-1] if host[-1:] == b"." else host


def _empty_label(name: str) -> bool:
    """`a..com` or `.a.com`; a trailing dot is the FQDN spelling, reported separately."""
    return not name.startswith("[") and "" in name.removesuffix(".").split(".")


def parse_host_pattern(pattern: str) -> bytes:
    """A route's host pattern in normal form: ``b"api.example.com"`` or ``b"*.example.com"``.

    Raises ValueError with a message for the operator when the pattern cannot match anything
    sensible (empty, a port, a `*` anywhere but a leading ``*.``).
    """
    text = pattern.strip().lower()
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if not name or "*" in name or _empty_label(name):
        raise ValueError(
            f"host {pattern!r} is not a host name; write `api.example.com` or "
            "`*.example.com` (any subdomain), or omit host to match any host"
        )
    if name.count(":") > 1 and not name.startswith("["):
        name = f"[{name}]"  # a bare IPv6 literal, as in `::1`
    elif ":" in name and not name.startswith("["):
        raise ValueError(
            f"host {pattern!r} has a port; host matching ignores ports, so write "
            f"{name.split(':')[0]!r} and use `listeners:` to tell ports apart"
        )
    try:
        encoded = name.encode("ascii") if name.isascii() else name.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"host {pattern!r} is not a valid host name: {exc}") from None
    normal = normalize_host(encoded)
    if normal != encoded:
        raise ValueError(f"host {pattern!r} is not a host name; did you mean {normal.decode()!r}?")
    return b"*." + normal if wildcard else normal
