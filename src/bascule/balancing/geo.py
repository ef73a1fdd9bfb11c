"""Geo: prefer targets in the client's region, then the configured fallback regions in order,
then any target.

The client's region comes from a `RegionLookup` (CIDR table and/or MaxMind database) on
`ctx.client_ip`. Each region's targets, and all targets together, are a smooth weighted
round robin of their own, so weights and slow start apply within a region exactly as they do
for `round_robin`. A client whose region is unknown, or whose regions have no available
target, goes to any target.

Per pick: one region lookup (cached) and one round-robin pick per region tried; the chain
of round robins for each client region is built once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T, attribute
from bascule.balancing.regions import RegionLookup
from bascule.balancing.round_robin import RoundRobin
from bascule.balancing.sampling import Random, default_random
from bascule.balancing.state import Clock

__all__ = ["Geo"]


class Geo(Generic[T]):
    __slots__ = ("_any", "_chains", "_lookup")

    def __init__(
        self,
        targets: Sequence[T],
        *,
        regions: RegionLookup,
        fallback: Mapping[str, Sequence[str]] | None = None,
        slow_start: float = 0.0,
        clock: Clock = time.monotonic,
        rng: Random | None = None,
    ) -> None:
        rng = rng or default_random()
        self._lookup = regions
        members: dict[str, list[T]] = {}
        for target in targets:
            region = attribute(target, "region")
            if isinstance(region, str):
                members.setdefault(region, []).append(target)
        by_region = {
            region: RoundRobin(group, slow_start=slow_start, clock=clock, rng=rng)
            for region, group in members.items()
        }
        self._any = RoundRobin(targets, slow_start=slow_start, clock=clock, rng=rng)
        # For each client region: its own targets, then each fallback region's, then any.
        fallback = fallback or {}
        self._chains: dict[str | None, tuple[RoundRobin[T], ...]] = {None: (self._any,)}
        for region in {*by_region, *fallback}:
            order = [region, *(r for r in fallback.get(region, ()) if r != region)]
            chain = [by_region[r] for r in dict.fromkeys(order) if r in by_region]
            self._chains[region] = (*chain, self._any)

    def _chain(self, ctx: PickContext) -> tuple[RoundRobin[T], ...]:
        region = self._lookup.region_of(ctx.client_ip) if ctx.client_ip else None
        chain = self._chains.get(region)
        return chain if chain is not None else self._chains[None]

    def pick(self, ctx: PickContext) -> T | None:
        for balancer in self._chain(ctx):
            target = balancer.pick(ctx)
            if target is not None:
                return target
        return None

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        seen: set[int] = set()
        for balancer in self._chain(ctx):
            for target in balancer.candidates(ctx):
                if id(target) not in seen:
                    seen.add(id(target))
                    yield target
