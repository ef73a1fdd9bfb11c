"""Weighted random: each request goes to a target drawn with probability weight / total.

Stateless between picks, so it needs no coordination and no feedback; over many requests the
shares match the weights, but short runs are lumpy (round_robin is smoother). O(1) per pick
(alias method). Slow start admits a ramping target's draw with probability equal to its
ramp, and draws again otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T, states_of
from bascule.balancing.sampling import Random, WeightedSampler, default_random, weighted_order
from bascule.balancing.state import Clock

__all__ = ["WeightedRandom"]


class WeightedRandom(Generic[T]):
    __slots__ = ("_clock", "_random", "_sampler", "_slow_start", "_states", "_targets")

    def __init__(
        self,
        targets: Sequence[T],
        *,
        slow_start: float = 0.0,
        clock: Clock = time.monotonic,
        rng: Random | None = None,
    ) -> None:
        self._targets = tuple(targets)
        self._states = states_of(self._targets, clock)
        for state in self._states:
            state.watch(None)
        self._clock = clock
        self._random = rng or default_random()
        self._slow_start = slow_start
        self._sampler = WeightedSampler([t.weight for t in self._targets], self._random)

    def pick(self, ctx: PickContext) -> T | None:
        index = self._sampler.draw_eligible(
            self._states, self._targets, ctx.exclude, self._clock, self._slow_start
        )
        return None if index is None else self._targets[index]

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        first = self._sampler.draw_eligible(
            self._states, self._targets, ctx.exclude, self._clock, self._slow_start
        )
        if first is None:
            return
        yield self._targets[first]
        rest = [
            i
            for i, state in enumerate(self._states)
            if i != first and state.available and self._targets[i] not in ctx.exclude
        ]
        for i in weighted_order(rest, self._sampler.weights, self._random):
            yield self._targets[i]
