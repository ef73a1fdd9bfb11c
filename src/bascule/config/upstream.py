"""Upstreams: named groups of targets, and how Bascule talks to them."""

from typing import Literal

from pydantic import Field

from bascule.config.address import Address
from bascule.config.section import Section
from bascule.config.units import Duration

__all__ = ["Keepalive", "Target", "Upstream", "UpstreamTimeouts"]


class Target(Section):
    """One backend server."""

    address: Address
    weight: int = Field(default=1, ge=1, le=1000, description="Relative share of requests.")
    region: str | None = Field(default=None, description="Free-form locality label, e.g. eu-west.")


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

    # A Literal, not str: each algorithm joins this list when it is implemented, so a
    # config naming one that does not exist yet fails at load instead of at traffic.
    balance: Literal["round_robin"] = "round_robin"
    targets: list[Target] = Field(min_length=1)
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    keepalive: Keepalive = Keepalive()
