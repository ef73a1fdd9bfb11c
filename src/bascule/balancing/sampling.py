"""Weighted random draws in O(1), skipping targets that cannot take the request.

`WeightedSampler` uses Vose's alias method: built in O(n), each draw costs one random number
and two list reads whatever the weights. Unavailable, excluded and (with slow start)
still-ramping targets are handled by rejection: draw again, at most `MAX_DRAWS` times, then
scan. While most of the weight is available a draw is O(1) on average; only when nearly
everything is down or excluded does the scan (O(n)) run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence

from bascule.balancing.state import TargetState, ramp

__all__ = [
    "MAX_DRAWS",
    "Random",
    "WeightedSampler",
    "default_random",
    "random_choice",
    "weighted_order",
]

Random = Callable[[], float]
"""A source of floats in [0, 1), such as `random.Random(seed).random`."""

MAX_DRAWS = 16
"""Rejected draws before falling back to a scan: with half the weight unavailable, the scan
runs once in 65,536 picks."""


class WeightedSampler:
    """Draw target indexes with probability weight / total weight."""

    __slots__ = ("_alias", "_count", "_equal", "_prob", "_random", "weights")

    def __init__(self, weights: Sequence[int], rng: Random) -> None:
        count = len(weights)
        self.weights = tuple(weights)
        self._count = count
        self._random = rng
        self._equal = len(set(weights)) <= 1
        self._prob = [1.0] * count
        self._alias = list(range(count))
        if not self._equal:
            self._build(weights)

    def _build(self, weights: Sequence[int]) -> None:
        count = self._count
        total = sum(weights)
        scaled = [w * count / total for w in weights]
        small = [i for i, p in enumerate(scaled) if p < 1.0]
        large = [i for i, p in enumerate(scaled) if p >= 1.0]
        while small and large:
            less, more = small.pop(), large.pop()
            self._prob[less] = scaled[less]
            self._alias[less] = more
            scaled[more] -= 1.0 - scaled[less]
            (small if scaled[more] < 1.0 else large).append(more)
        for i in small + large:  # what rounding leaves over is a certain pick
            self._prob[i] = 1.0

    def draw(self) -> int:
        """One index; the caller guarantees there is at least one target."""
        u = self._random() * self._count
        i = int(u)
        if self._equal or u - i < self._prob[i]:
            return i
        return self._alias[i]

    def draw_eligible(
        self,
        states: Sequence[TargetState],
        targets: Sequence[object],
        exclude: Collection[object],
        now: Callable[[], float] | None = None,
        slow_start: float = 0.0,
    ) -> int | None:
        """An index whose target is available, not excluded and (with slow start) admitted
        with probability equal to its ramp; None when no target is available."""
        if not self._count:
            return None
        for _ in range(MAX_DRAWS):
            i = self.draw()
            state = states[i]
            if not state.available or (exclude and targets[i] in exclude):
                continue
            if not slow_start or state.up_since is None or now is None:
                return i
            share = ramp(state.up_since, now(), slow_start)
            if share >= 1.0 or self._random() < share:
                return i
        return self._scan(states, targets, exclude)

    def _scan(
        self, states: Sequence[TargetState], targets: Sequence[object], exclude: Collection[object]
    ) -> int | None:
        eligible = [
            i
            for i in range(self._count)
            if states[i].available and not (exclude and targets[i] in exclude)
        ]
        if not eligible:
            return None
        weights = [float(self.weights[i]) for i in eligible]
        return random_choice(eligible, weights, self._random)


def random_choice(items: Sequence[int], weights: Sequence[float], rng: Random) -> int:
    """One of `items` with probability proportional to `weights` (linear; for rare paths)."""
    point = rng() * sum(weights)
    for item, weight in zip(items, weights, strict=True):
        point -= weight
        if point < 0.0:
            return item
    return items[-1]


def weighted_order(indexes: Sequence[int], weights: Sequence[float], rng: Random) -> list[int]:
    """`indexes` in a weighted random order without repeats (Efraimidis-Spirakis keys):
    heavier first more often. O(n log n), for failover lists."""
    keyed = [(rng() ** (1.0 / weights[i]) if weights[i] > 0 else 0.0, i) for i in indexes]
    keyed.sort(reverse=True)
    return [i for _, i in keyed]


def default_random(seed: int | None = None) -> Random:
    """A private generator, so balancers do not share (and race on) the global one."""
    return random.Random(seed).random
