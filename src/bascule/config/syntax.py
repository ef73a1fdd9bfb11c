"""The lexical rules config values must follow: names, host names, HTTP tokens, header values.

They are checked at load time because a bad header name or a CR in a header value would
otherwise surface as a broken response (or a header injection) at request time.
"""

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = [
    "HeaderName",
    "HeaderValue",
    "Method",
    "Name",
    "UpgradeProtocol",
    "check_header_value",
    "check_host_pattern",
    "is_hostname",
]

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 1123 labels; "_" is allowed because container and service-discovery names use it.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# Names end up in metrics labels, log fields and admin URLs, so keep them plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MAX_HOSTNAME = 253  # RFC 1035's limit on a full domain name


def is_hostname(host: str) -> bool:
    """True for an IP literal or a DNS name such as `localhost` or `api.example.com`."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    name = host.removesuffix(".")
    return 0 < len(name) <= _MAX_HOSTNAME and all(_LABEL.fullmatch(x) for x in name.split("."))


def check_host_pattern(pattern: str) -> str:
    """Lower-case an exact host or `*.suffix` wildcard; reject what could never match."""
    host = pattern.strip().lower().removesuffix(".")
    if host == "*":
        raise ValueError("'*' matches every host; leave `host` out instead")
    suffix = host.removeprefix("*.")
    if "*" in suffix:
        raise ValueError(
            f"{pattern!r}: a wildcard must be the whole first label, like *.example.com"
        )
    if ":" in suffix and not suffix.startswith("["):
        raise ValueError(f"{pattern!r}: match the host name without a port")
    bare = suffix.removeprefix("[").removesuffix("]")
    if suffix.startswith("[") and not _is_ipv6(bare):
        raise ValueError(f"{pattern!r} is not a valid IPv6 host")
    if not suffix.startswith("[") and not is_hostname(suffix):
        raise ValueError(f"{pattern!r} is not a valid host name")
    return host


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _check_token(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid {kind}: use letters, digits and !#$%&'*+-.^_`|~ only"
            )
        return value

    return AfterValidator(check)


def check_header_value(value: str) -> str:
    """Reject CR, LF and NUL: they would split or truncate the header on the wire."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value cannot contain a line break (CR, LF) or NUL")
    return value


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: start with a letter or digit, "
            "then use letters, digits, '_', '.' or '-'"
        )
    return value


def _upper(value: str) -> str:
    return value.upper()


HeaderName = Annotated[str, _check_token("header name")]
"""A header field name (RFC 9110 token); case is kept, comparisons ignore it."""

HeaderValue = Annotated[str, AfterValidator(check_header_value)]
"""A header field value with no CR, LF or NUL."""

Method = Annotated[str, AfterValidator(_upper), _check_token("HTTP method")]
"""An HTTP method, upper-cased ("get" becomes "GET")."""


def _lower(value: str) -> str:
    return value.lower()


UpgradeProtocol = Annotated[str, AfterValidator(_lower), _check_token("protocol name")]
"""A protocol an Upgrade header may name ("websocket", "h2c"), lower-cased."""

Name = Annotated[str, AfterValidator(_check_name)]
"""The name of a listener, route or upstream, as other sections refer to it."""
