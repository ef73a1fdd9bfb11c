"""Least load: the target that reports the lowest load (0-100), tier by tier.

Targets report their own load (a response header, or a health-check body; see
`TargetState.report_load`). A report older than `max_age` no longer counts: the target's
load is then unknown, and an unknown load counts as the average of the known ones (0 when
none is known), so a silent target is neither shunned nor flooded.

Tiers: targets have a `priority` (lower first) and may have a `max_load`. A tier takes the
traffic while its least-loaded target is under that target's max_load; otherwise the
request spills to the next tier. When every tier is full the least-loaded target anywhere
takes it. So A (priority 0, max_load 50), B (priority 1, max_load 75), C (priority 2)
reads: A while A's load is under 50, else B while B's is under 75, else C. Give the
targets of one tier the same max_load: the tier is judged by its least-loaded member.

Between reports the least-loaded target would take every request; so equal loads are split
by requests in flight per unit of weight, (in_flight + 1) / weight, and then in turn. That
is the only use of weights here; slow start does not apply (load reports do its job).

Each tier keeps its targets in two `ScoreBuckets` (those with a fresh report by (load,
spread), the others by spread), moved by the feedback calls in O(1) (O(log d) for a new
score). Reports expire through a heap of when to look at each target again, touched once
per target per `max_age`, not per report. A pick reads one or two tops per tier: O(tiers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T, attribute, states_of
from bascule.balancing.buckets import ScoreBuckets
from bascule.balancing.heap import IndexedHeap, Key
from bascule.balancing.state import Clock

__all__ = ["DEFAULT_MAX_AGE", "LeastLoad"]

DEFAULT_MAX_AGE = 10.0
NEVER: Key = (math.inf,)


class _Tier:
    __slots__ = ("known", "members", "unknown")

    def __init__(self, members: list[int]) -> None:
        self.members = members  # target indexes, in config order
        # By position in `members`: targets with a fresh report by (load, spread), the
        # others by spread alone; each available target is in exactly one of them.
        self.known: ScoreBuckets[tuple[float, float]] = ScoreBuckets(len(members))
        self.unknown: ScoreBuckets[float] = ScoreBuckets(len(members))


class LeastLoad(Generic[T]):
    __slots__ = (
        "_clock",
        "_counted",
        "_expiry",
        "_known_count",
        "_known_sum",
        "_max_age",
        "_max_loads",
        "_place",
        "_states",
        "_targets",
        "_tiers",
        "_weights",
    )

    def __init__(
        self,
        targets: Sequence[T],
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Clock = time.monotonic,
    ) -> None:
        self._targets = tuple(targets)
        self._states = states_of(self._targets, clock)
        self._clock = clock
        self._max_age = max_age
        self._weights = [float(t.weight) for t in self._targets]
        self._max_loads = [_max_load(t) for t in self._targets]
        priorities = [_priority(t) for t in self._targets]
        self._tiers = [
            _Tier([i for i, p in enumerate(priorities) if p == priority])
            for priority in sorted(set(priorities))
        ]
        # Each target's tier and its position in that tier.
        self._place = [(0, 0)] * len(self._targets)
        for tier_index, tier in enumerate(self._tiers):
            for position, index in enumerate(tier.members):
                self._place[index] = (tier_index, position)
        self._counted: list[float | None] = [None] * len(self._targets)  # load in the average
        self._known_sum = 0.0
        self._known_count = 0
        # When to look at a target's report again: no later than it expires. Not moved on
        # every report (that would cost O(log n) per response), only when it comes due.
        self._expiry = IndexedHeap([NEVER] * len(self._targets))
        now = clock()
        for index, state in enumerate(self._states):
            self._update(index, now)
            state.watch(self._watcher(index))

    def _watcher(self, index: int) -> Callable[[], None]:
        def changed() -> None:
            self._update(index, self._clock())

        return changed

    def _update(self, index: int, now: float, due: bool = False) -> None:
        """Re-place one target after its state changed, or (`due`) its report came due."""
        state = self._states[index]
        load = state.fresh_load(now, self._max_age)
        counted = self._counted[index]
        if counted != load:
            if counted is not None:
                self._known_sum -= counted
                self._known_count -= 1
            if load is not None:
                self._known_sum += load
                self._known_count += 1
            self._counted[index] = load
        expiry = self._expiry
        if load is None:
            if expiry.keys[index] is not NEVER:
                expiry.update(index, NEVER)
        elif due or expiry.keys[index] is NEVER:
            expiry.update(index, (state.load_at + self._max_age,))
        tier_index, position = self._place[index]
        tier = self._tiers[tier_index]
        if not state.available:
            tier.known.move(position, None)
            tier.unknown.move(position, None)
            return
        spread = (state.in_flight + 1) / self._weights[index]
        if load is None:
            tier.known.move(position, None)
            tier.unknown.move(position, spread)
        else:
            tier.unknown.move(position, None)
            tier.known.move(position, (load, spread))

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry.keys and expiry.keys[expiry.top()][0] < now:
            self._update(expiry.top(), now, due=True)

    def _average(self) -> float:
        return self._known_sum / self._known_count if self._known_count else 0.0

    def _tier_best(self, tier: _Tier, average: float) -> tuple[float, float, int]:
        """(load, spread, target index) of the tier's least-loaded available target;
        index -1 when it has none."""
        best = (math.inf, math.inf, -1)
        position = tier.known.top()
        known = tier.known.score[position] if position >= 0 else None
        if known is not None:
            best = (known[0], known[1], tier.members[position])
        position = tier.unknown.top()
        unknown = tier.unknown.score[position] if position >= 0 else None
        # on a tie the unreported target wins: it must get requests to ever report
        if unknown is not None and (average, unknown) <= best[:2]:
            best = (average, unknown, tier.members[position])
        return best

    def _under_max(self, index: int, load: float) -> bool:
        max_load = self._max_loads[index]
        return max_load is None or load < max_load

    def _best(self, now: float) -> int:
        """The pick before exclusions: the first open tier's least-loaded target, else the
        least-loaded target anywhere; -1 when none is available."""
        self._expire(now)
        average = self._average()
        overall = (math.inf, math.inf, -1)
        for tier in self._tiers:
            best = self._tier_best(tier, average)
            if best[2] < 0:
                continue
            if self._under_max(best[2], best[0]):
                return best[2]
            overall = min(overall, best)
        return overall[2]

    def pick(self, ctx: PickContext) -> T | None:
        now = self._clock()
        index = self._best(now)
        if index < 0:
            return None
        target = self._targets[index]
        if ctx.exclude and target in ctx.exclude:
            for index in self._order(now):
                target = self._targets[index]
                if target not in ctx.exclude:
                    return target
            return None
        return target

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        """The pick; then the open tiers' targets under their max_load, tier by tier, least
        loaded first; then every other available target, least loaded first. The order
        costs O(n log n): it is for failover."""
        first = self.pick(ctx)
        if first is None:
            return
        yield first
        for index in self._order(self._clock()):
            target = self._targets[index]
            if target is not first and target not in ctx.exclude:
                yield target

    def load_of(self, index: int, now: float) -> float:
        """The load a target counts as now: its fresh report, else the average."""
        load = self._states[index].fresh_load(now, self._max_age)
        return self._average() if load is None else load

    def _order(self, now: float) -> list[int]:
        self._expire(now)
        average = self._average()
        order: list[int] = []
        rest: list[tuple[float, float, int]] = []
        for tier in self._tiers:
            best = self._tier_best(tier, average)
            members = sorted(
                (self.load_of(i, now), self._spread(i), i)
                for i in tier.members
                if self._states[i].available
            )
            if best[2] >= 0 and self._under_max(best[2], best[0]):
                order += [i for load, _, i in members if self._under_max(i, load)]
                rest += [m for m in members if not self._under_max(m[2], m[0])]
            else:
                rest += members
        return order + [i for _, _, i in sorted(rest)]

    def _spread(self, index: int) -> float:
        return (self._states[index].in_flight + 1) / self._weights[index]


def _priority(target: object) -> int:
    value = attribute(target, "priority", 0)
    return value if isinstance(value, int) else 0


def _max_load(target: object) -> float | None:
    value = attribute(target, "max_load")
    return float(value) if isinstance(value, int | float) else None
