"""An upstream's balancing settings, as the balancers need them (not as YAML spells them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bascule.balancing.least_load import DEFAULT_MAX_AGE
from bascule.balancing.regions import MmdbRegions, RegionLookup

if TYPE_CHECKING:
    from bascule.config.upstream import Upstream

__all__ = ["BalancerSettings"]


@dataclass(frozen=True)
class BalancerSettings:
    """What `balancing.create` needs besides the targets. Defaults match the config's.

    - `balance`: the algorithm's config name.
    - `bounded_load`: hash / ip_hash only; None for plain consistent hashing.
    - `load_max_age`: least_load only; seconds after which a load report no longer counts.
    - `slow_start`: seconds over which a target that comes back ramps to its full weight
      (round_robin, random, least_conn, power_of_two, least_time, geo); 0 is off.
    - `regions` and `fallback`: geo only; where clients are, and which regions to try
      after the client's own.
    """

    balance: str = "round_robin"
    bounded_load: float | None = None
    load_max_age: float = DEFAULT_MAX_AGE
    slow_start: float = 0.0
    regions: RegionLookup | None = None
    fallback: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, upstream: Upstream) -> BalancerSettings:
        """Settings from a validated upstream; opens the geo database if there is one
        (raises OSError or maxminddb.InvalidDatabaseError if it cannot be read)."""
        regions = None
        fallback: dict[str, tuple[str, ...]] = {}
        geo = upstream.geo
        if geo is not None:
            source = None
            if geo.mmdb is not None:
                mmdb = geo.mmdb
                source = MmdbRegions(mmdb.path, mmdb.field, mmdb.regions)
            regions = RegionLookup(geo.client_regions, source)
            fallback = {region: tuple(order) for region, order in geo.fallback.items()}
        return cls(
            balance=upstream.balance,
            bounded_load=upstream.bounded_load,
            load_max_age=upstream.load_max_age,
            slow_start=upstream.slow_start,
            regions=regions,
            fallback=fallback,
        )
