"""HTTP caching rules for a shared cache (RFC 9111), as pure functions of headers and times.

No I/O here: what may be stored (§3), how long it stays fresh (§4.2.1, §4.2.2), how old it
is (§4.2.3), and whether a request lets a stored response answer it (§4.2, §5.2.1).
Times are seconds since the epoch (HTTP dates are wall-clock times).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "HEURISTIC_FRACTION",
    "CacheControl",
    "Freshness",
    "http_date",
    "parse_cache_control",
    "storable",
]

HEURISTIC_FRACTION = 0.1
"""Of the time since Last-Modified, the freshness given to a response without an explicit
one (§4.2.2's "typical setting"; nginx and Varnish do not do this, Squid and browsers do)."""

UNDERSTOOD_STATUSES = frozenset(
    (200, 203, 204, 206, 300, 301, 302, 303, 304, 307, 308, 404, 405, 410, 414, 451, 501)
)
"""Statuses this cache knows the meaning of; only these are stored (§3, "understands")."""

HEURISTIC_STATUSES = frozenset((200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501))
"""Heuristically cacheable by default (RFC 9110 §15.1)."""

_DIRECTIVE = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,]*))?\s*'
)


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The directives of one Cache-Control field (names lower-case, values unquoted)."""

    directives: dict[str, str | None]

    def has(self, name: str) -> bool:
        return name in self.directives

    def seconds(self, name: str) -> int | None:
        """A delta-seconds directive; None if absent. An invalid value reads as 0 (§1.2.2:
        the cache must then treat the response as stale rather than guess)."""
        if name not in self.directives:
            return None
        value = self.directives[name]
        if value is None or not value.isdigit():
            return 0
        return int(value)


def parse_cache_control(value: bytes | None) -> CacheControl:
    directives: dict[str, str | None] = {}
    if value:
        for part in value.decode("latin-1").split(","):
            found = _DIRECTIVE.fullmatch(part)
            if found is None:
                continue
            name, argument = found.group(1).lower(), found.group(2)
            if argument is not None:
                argument = argument.strip()
                if argument.startswith('"') and argument.endswith('"') and len(argument) >= 2:
                    argument = argument[1:-1]
            directives.setdefault(name, argument)  # the first one counts
    return CacheControl(directives)


def http_date(value: bytes | None) -> float | None:
    """An HTTP date as a timestamp; None if absent or not a date."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def storable(
    status: int,
    response: CacheControl,
    *,
    request: CacheControl,
    authorized: bool,
    has_expires: bool,
    has_validator: bool,
) -> bool:
    """May a shared cache store this response to a GET (§3, §3.5)? A response without
    explicit freshness is stored only if its status is heuristically cacheable and it has
    a validator (ETag or Last-Modified): one that could never be fresh nor revalidated
    would only take room."""
    if status not in UNDERSTOOD_STATUSES or status == 206 or status == 304:
        return False  # partial content and 304s are not stored whole here
    if request.has("no-store") or response.has("no-store") or response.has("private"):
        return False
    if authorized and not (
        response.has("public") or response.has("s-maxage") or response.has("must-revalidate")
    ):
        return False
    return (
        has_expires
        or response.has("max-age")
        or response.has("s-maxage")
        or response.has("public")
        or (status in HEURISTIC_STATUSES and has_validator)
    )


@dataclass(frozen=True, slots=True)
class Freshness:
    """What a stored response's age and lifetime are computed from (§4.2)."""

    request_time: float  # when the request that brought it was sent
    response_time: float  # when the response arrived
    date: float | None  # its Date
    age: int  # its Age, 0 when absent
    lifetime: float  # its freshness lifetime

    @classmethod
    def of(
        cls,
        *,
        status: int,
        response: CacheControl,
        date: float | None,
        expires: bytes | None,
        last_modified: float | None,
        age: bytes | None,
        request_time: float,
        response_time: float,
    ) -> Freshness:
        return cls(
            request_time,
            response_time,
            date,
            _age_value(age),
            _lifetime(status, response, date, expires, last_modified, response_time),
        )

    def current_age(self, now: float) -> float:
        """§4.2.3."""
        apparent = max(0.0, self.response_time - self.date) if self.date is not None else 0.0
        corrected = self.age + (self.response_time - self.request_time)
        return max(apparent, corrected) + (now - self.response_time)

    def ttl(self, now: float) -> float:
        """Seconds it stays fresh from `now`; negative once stale."""
        return self.lifetime - self.current_age(now)


def _age_value(value: bytes | None) -> int:
    if value is None:
        return 0
    text = value.strip()
    return int(text) if text.isdigit() else 0


def _lifetime(
    status: int,
    response: CacheControl,
    date: float | None,
    expires: bytes | None,
    last_modified: float | None,
    response_time: float,
) -> float:
    """§4.2.1: s-maxage, then max-age, then Expires - Date, then the heuristic."""
    for directive in ("s-maxage", "max-age"):
        seconds = response.seconds(directive)
        if seconds is not None:
            return float(seconds)
    if expires is not None:
        expiry = http_date(expires)
        if expiry is None:
            return 0.0  # an invalid Expires means already expired (§5.3)
        return expiry - (date if date is not None else response_time)
    if last_modified is not None and status in HEURISTIC_STATUSES:
        since = (date if date is not None else response_time) - last_modified
        return max(0.0, since * HEURISTIC_FRACTION)
    return 0.0
