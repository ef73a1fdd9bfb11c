"""Upstreams: named groups of targets, and how Bascule talks to them."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from bascule.config.address import Address
from bascule.config.geo import Geo
from bascule.config.hash_key import HashKey, parse_hash_key
from bascule.config.section import Section
from bascule.config.sticky import Sticky
from bascule.config.syntax import HeaderName
from bascule.config.units import Duration

__all__ = ["BALANCE_NAMES", "Balance", "Keepalive", "Target", "Upstream", "UpstreamTimeouts"]

# A Literal, not str: each algorithm joins this list when it is implemented, so a config
# naming one that does not exist fails at load instead of at traffic. The same names as
# bascule.balancing.BALANCERS (a test pins that).
Balance = Literal[
    "round_robin",
    "random",
    "least_conn",
    "power_of_two",
    "least_time",
    "ip_hash",
    "hash",
    "least_load",
    "geo",
]
BALANCE_NAMES: tuple[str, ...] = Balance.__args__  # type: ignore[attr-defined]


def _check_key(template: str) -> str:
    parse_hash_key(template)
    return template


class Target(Section):
    """One backend server."""

    address: Address
    weight: int = Field(default=1, ge=1, le=1000, description="Relative share of requests.")
    region: str | None = Field(
        default=None, description="Locality label, e.g. eu-west; balance: geo prefers it."
    )
    priority: int = Field(
        default=0,
        ge=0,
        description="least_load: the tier, lower first; a tier spills to the next when full.",
    )
    max_load: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="least_load: the tier takes traffic while this target's load is under it.",
    )


class UpstreamTimeouts(Section):
    """How long to wait on a target before counting it as failed."""

    connect: Duration = Field(default=5.0, description="Establishing the TCP connection.")
    read: Duration = Field(
        default=60.0, description="The longest wait for the next response bytes."
    )
    send: Duration = Field(default=60.0, description="The longest wait to write request bytes.")


class Keepalive(Section):
    """Reuse of idle connections to targets."""

    max_idle: int = Field(
        default=64, ge=0, description="Idle connections kept per target; 0 disables."
    )
    idle_timeout: Duration = Field(
        default=60.0, description="An idle pooled connection is closed after."
    )


class Upstream(Section):
    """A named group of targets with one balancer."""

    balance: Balance = Field(default="round_robin", description="How a target is picked.")
    targets: list[Target] = Field(min_length=1)
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    keepalive: Keepalive = Keepalive()
    key: Annotated[str, AfterValidator(_check_key)] | None = Field(
        default=None,
        description="hash only, and required there: what to hash, e.g. $remote_addr, $uri, "
        "$header_x_user, $cookie_sid, $arg_id, with literal text.",
    )
    bounded_load: float | None = Field(
        default=None,
        gt=1.0,
        description="hash and ip_hash: no target takes more than this times its share of "
        "the requests in flight (1.25 = 25% over).",
    )
    load_header: HeaderName = Field(
        default="X-Server-Load",
        description="least_load: the response header in which targets report their load.",
    )
    load_max_age: Duration = Field(
        default=10.0,
        description="least_load: a load report older than this no longer counts.",
    )
    slow_start: Duration = Field(
        default=0.0,
        description="A target that comes back ramps up to its full weight over this; 0 is off.",
    )
    geo: Geo | None = Field(default=None, description="balance: geo only: client regions.")
    sticky: Sticky | None = Field(
        default=None, description="Keep a client's requests on one target; see Sticky."
    )

    @property
    def hash_key(self) -> HashKey | None:
        """The parsed `key` template, for the proxy to evaluate per request."""
        return None if self.key is None else parse_hash_key(self.key)
