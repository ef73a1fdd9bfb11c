"""Least connections: the target with the fewest requests in flight per unit of weight.

The key is (in_flight + 1) / weight, as HAProxy's leastconn: the +1 is the request being
placed, so weights count even when everything is idle (weight 3 takes three requests before
weight 1 takes its second). Ties go to the target whose load changed least recently, so
equal targets take turns.

nginx scans every target per pick. Here targets sit in `ScoreBuckets` kept up to date by
the feedback calls (`TargetState.start` / `finish` / `set_available`): a pick reads the
lowest bucket's first target, O(1); a feedback call moves one target to the back of another
bucket, O(1) (O(log d) when its score is new). Going to the back makes equal targets take
turns.

Slow start divides the weight by the ramp (the key rises while a target ramps); the keys of
ramping targets are refreshed at most every 1% of the ramp.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T, states_of
from bascule.balancing.buckets import ScoreBuckets
from bascule.balancing.state import Clock, ramp

__all__ = ["LeastConn"]

RAMP_REFRESH = 0.01
"""Ramping scores are refreshed each time this fraction of the slow start has passed."""


class LeastConn(Generic[T]):
    __slots__ = (
        "_buckets",
        "_clock",
        "_next_refresh",
        "_ramping",
        "_slow_start",
        "_states",
        "_targets",
        "_weights",
    )

    def __init__(
        self, targets: Sequence[T], *, slow_start: float = 0.0, clock: Clock = time.monotonic
    ) -> None:
        self._targets = tuple(targets)
        self._states = states_of(self._targets, clock)
        self._weights = [float(t.weight) for t in self._targets]
        self._clock = clock
        self._slow_start = slow_start
        self._ramping: set[int] = set()
        self._next_refresh = -math.inf
        self._buckets: ScoreBuckets[float] = ScoreBuckets(len(self._targets))
        now = clock()
        for index, state in enumerate(self._states):
            self._buckets.move(index, self._score(index, now))
            state.watch(self._watcher(index))

    def _watcher(self, index: int) -> Callable[[], None]:
        def changed() -> None:
            self._buckets.move(index, self._score(index, self._clock()))

        return changed

    def _score(self, index: int, now: float) -> float | None:
        state = self._states[index]
        if not state.available:
            self._ramping.discard(index)
            return None
        weight = self._weights[index]
        if self._slow_start and state.up_since is not None:
            share = ramp(state.up_since, now, self._slow_start)
            if share < 1.0:
                self._ramping.add(index)
                weight *= share
            else:
                self._ramping.discard(index)
        return (state.in_flight + 1) / weight

    def _refresh(self) -> None:
        now = self._clock()
        if now < self._next_refresh:
            return
        self._next_refresh = now + self._slow_start * RAMP_REFRESH
        for index in list(self._ramping):
            self._buckets.move(index, self._score(index, now))

    def pick(self, ctx: PickContext) -> T | None:
        if self._ramping:
            self._refresh()
        index = self._buckets.top()
        if index < 0:
            return None
        target = self._targets[index]
        if ctx.exclude and target in ctx.exclude:
            for index in self._buckets.ordered():  # consumed here, before any score changes
                target = self._targets[index]
                if target not in ctx.exclude:
                    return target
            return None
        return target

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        if self._ramping:
            self._refresh()
        # A snapshot: scores change while the proxy tries these one by one.
        for index in list(self._buckets.ordered()):
            target = self._targets[index]
            if target not in ctx.exclude:
                yield target
