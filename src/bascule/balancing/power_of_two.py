"""Power of two choices: draw two targets at random by weight, send to the less busy.

`power_of_two` compares requests in flight per unit of weight, (in_flight + 1) / weight;
`least_time` compares the peak-EWMA response time times (in_flight + 1), per unit of weight,
as Finagle's and Linkerd's balancers do. Two random draws, not a scan of every target, keep
each pick O(1) and spread bursts: a scan sends every request to the single best target
until feedback arrives, two choices almost never pick the worst (Mitzenmacher, "The Power
of Two Choices in Randomized Load Balancing").

Slow start lowers how often a ramping target is drawn (see `WeightedSampler`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T, states_of
from bascule.balancing.sampling import Random, WeightedSampler, default_random
from bascule.balancing.state import Clock

__all__ = ["LeastTime", "PowerOfTwo"]

RTT_FLOOR = 1e-6
"""A response time never counts as less than a microsecond, so that when estimates have
decayed to nothing the in-flight counts still decide."""

SECOND_DRAWS = 4
"""Weighted draws for a second target different from the first, then as many uniform ones
(a draw repeats the first only when it holds much of the weight, or there are few)."""


class PowerOfTwo(Generic[T]):
    __slots__ = ("_clock", "_random", "_sampler", "_slow_start", "_states", "_targets", "_weights")

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
        self._weights = [float(t.weight) for t in self._targets]
        self._clock = clock
        self._random = rng or default_random()
        self._slow_start = slow_start
        self._sampler = WeightedSampler([t.weight for t in self._targets], self._random)

    def _cost(self, index: int, now: float) -> float:
        return (self._states[index].in_flight + 1) / self._weights[index]

    def _choose(self, ctx: PickContext) -> int | None:
        # The common case inline: two different, available targets, no retry, no ramp.
        draw, states = self._sampler.draw, self._states
        if self._targets and not ctx.exclude:
            first, second = draw(), draw()
            one, two = states[first], states[second]
            if (
                first != second
                and one.available
                and two.available
                and (not self._slow_start or (one.up_since is None and two.up_since is None))
            ):
                return self._better(first, second)
        return self._choose_carefully(ctx)

    def _better(self, first: int, second: int) -> int:
        """The less busy per unit of weight; the first on a tie."""
        states, weights = self._states, self._weights
        if (states[second].in_flight + 1) * weights[first] < (
            states[first].in_flight + 1
        ) * weights[second]:
            return second
        return first

    def _choose_carefully(self, ctx: PickContext) -> int | None:
        sampler, states, targets = self._sampler, self._states, self._targets
        first = sampler.draw_eligible(states, targets, ctx.exclude, self._clock, self._slow_start)
        if first is None:
            return None
        second = self._second(first, ctx)
        return first if second < 0 else self._better(first, second)

    def _second(self, first: int, ctx: PickContext) -> int:
        """Another eligible target, by weight; if the first holds so much of the weight
        that draws keep returning it, any other, uniformly. -1 when there is none."""
        sampler, states, targets = self._sampler, self._states, self._targets
        for _ in range(SECOND_DRAWS):
            second = sampler.draw_eligible(
                states, targets, ctx.exclude, self._clock, self._slow_start
            )
            if second is not None and second != first:
                return second
        count = len(targets)
        for _ in range(SECOND_DRAWS):
            second = (first + 1 + int(self._random() * (count - 1))) % count
            if second != first and states[second].available and targets[second] not in ctx.exclude:
                return second
        return -1

    def pick(self, ctx: PickContext) -> T | None:
        index = self._choose(ctx)
        return None if index is None else self._targets[index]

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        first = self._choose(ctx)
        if first is None:
            return
        yield self._targets[first]
        now = self._clock()
        rest = sorted(
            (
                (self._cost(i, now), i)
                for i, state in enumerate(self._states)
                if i != first and state.available and self._targets[i] not in ctx.exclude
            ),
        )
        for _, i in rest:
            yield self._targets[i]


class LeastTime(PowerOfTwo[T]):
    """Peak-EWMA response time x (in_flight + 1) / weight, lowest wins (see `TargetState.rtt`
    for the decay). A target 10x slower than the others gets a request only when they are
    ~10x busier; an idle target's estimate decays, so it is tried again and re-measured."""

    __slots__ = ()

    def _cost(self, index: int, now: float) -> float:
        state = self._states[index]
        return max(state.rtt(now), RTT_FLOOR) * (state.in_flight + 1) / self._weights[index]

    def _better(self, first: int, second: int) -> int:
        now = self._clock()
        return second if self._cost(second, now) < self._cost(first, now) else first
