"""Balancers by the name the config uses for them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bascule.balancing.base import Balancer
from bascule.balancing.consistent_hash import ConsistentHash, client_ip, hash_key
from bascule.balancing.geo import Geo
from bascule.balancing.least_conn import LeastConn
from bascule.balancing.least_load import LeastLoad
from bascule.balancing.power_of_two import LeastTime, PowerOfTwo
from bascule.balancing.regions import RegionLookup
from bascule.balancing.round_robin import RoundRobin
from bascule.balancing.sampling import Random, default_random
from bascule.balancing.settings import BalancerSettings
from bascule.balancing.state import Clock
from bascule.balancing.weighted_random import WeightedRandom

__all__ = ["BALANCERS", "create"]

Factory = Callable[[Sequence[Any], BalancerSettings, Clock, Random], Balancer[Any]]

BALANCERS: dict[str, Factory] = {
    "round_robin": lambda targets, s, clock, rng: RoundRobin(
        targets, slow_start=s.slow_start, clock=clock, rng=rng
    ),
    "random": lambda targets, s, clock, rng: WeightedRandom(
        targets, slow_start=s.slow_start, clock=clock, rng=rng
    ),
    "least_conn": lambda targets, s, clock, rng: LeastConn(
        targets, slow_start=s.slow_start, clock=clock
    ),
    "power_of_two": lambda targets, s, clock, rng: PowerOfTwo(
        targets, slow_start=s.slow_start, clock=clock, rng=rng
    ),
    "least_time": lambda targets, s, clock, rng: LeastTime(
        targets, slow_start=s.slow_start, clock=clock, rng=rng
    ),
    "ip_hash": lambda targets, s, clock, rng: ConsistentHash(
        targets, key=client_ip, bounded_load=s.bounded_load, clock=clock, rng=rng
    ),
    "hash": lambda targets, s, clock, rng: ConsistentHash(
        targets, key=hash_key, bounded_load=s.bounded_load, clock=clock, rng=rng
    ),
    "least_load": lambda targets, s, clock, rng: LeastLoad(
        targets, max_age=s.load_max_age, clock=clock
    ),
    "geo": lambda targets, s, clock, rng: Geo(
        targets,
        regions=s.regions or RegionLookup(),
        fallback=s.fallback,
        slow_start=s.slow_start,
        clock=clock,
        rng=rng,
    ),
}
"""Every `balance:` name; config/upstream.py's Literal lists the same names."""


def create(
    settings: BalancerSettings | str,
    targets: Sequence[Any],
    *,
    clock: Clock = time.monotonic,
    rng: Random | None = None,
) -> Balancer[Any]:
    """A balancer over `targets`, rebuilt by calling this again when membership changes.

    `settings` is `BalancerSettings.from_config(upstream)`, or just a name for that
    algorithm with default settings. `clock` must be the one the targets' `TargetState`s
    use; `rng` (a float source in [0, 1)) makes the random algorithms reproducible.
    """
    if isinstance(settings, str):
        settings = BalancerSettings(balance=settings)
    factory = BALANCERS.get(settings.balance)
    if factory is None:
        raise ValueError(
            f"no balancer is named {settings.balance!r}; known: {', '.join(BALANCERS)}"
        )
    return factory(targets, settings, clock, rng or default_random())
