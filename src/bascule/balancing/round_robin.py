"""Smooth weighted round robin, as nginx does it.

Each pick adds every target's weight to its running score, takes the highest, and
subtracts the total from the winner. Weights 5:1:1 give a a b a c a a, not a a a a a b c:
heavy targets get their share spread out instead of in bursts.

nginx scans every target per pick (O(n)). Targets of equal weight always take their turns
in index order, so they are kept as one group: a group's score is that of its next member,
and a pick scans groups, not targets. The sequence is exactly nginx's, at O(d) per pick for
d distinct weights (1 to a handful in real configs; O(1) when all weights are equal).

A target that is unavailable or excluded loses its turn to the next one in the sequence, so
its share is spread over the others by weight. With slow start, a ramping target keeps its
turn with probability equal to its ramp (its effective weight / its weight) and passes it
on otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T, states_of
from bascule.balancing.sampling import Random, default_random
from bascule.balancing.state import Clock, ramp

__all__ = ["RoundRobin"]

MAX_PASSES = 8
"""Turns passed on before a pick falls back to the first eligible target in index order:
bounds a pick when most targets are down, excluded or ramping."""


class RoundRobin(Generic[T]):
    __slots__ = (
        "_clock",
        "_count",
        "_equal",
        "_members",
        "_next",
        "_pointers",
        "_random",
        "_scores",
        "_settled",
        "_slow_start",
        "_states",
        "_targets",
        "_total",
        "_weights",
    )

    def __init__(
        self,
        targets: Sequence[T],
        *,
        slow_start: float = 0.0,
        clock: Clock = time.monotonic,
        rng: Random | None = None,
    ) -> None:
        self._targets = tuple(targets)
        self._count = len(self._targets)
        self._states = states_of(self._targets, clock)
        for state in self._states:
            state.watch(None)
        self._clock = clock
        self._random = rng or default_random()
        self._slow_start = slow_start
        # up_since values whose ramp is known to be over, so the fast path skips the clock
        self._settled: list[float | None] = [None] * self._count
        weights = [t.weight for t in self._targets]
        self._total = sum(weights)
        self._equal = len(set(weights)) <= 1  # then a counter is the same, and cheaper
        self._next = 0
        # One group per distinct weight, in order of first member; members in index order.
        groups: dict[int, list[int]] = {}
        for index, weight in enumerate(weights):
            groups.setdefault(weight, []).append(index)
        self._weights = list(groups)
        self._members = [tuple(members) for members in groups.values()]
        self._scores = [0] * len(self._members)  # the score of each group's next member
        self._pointers = [0] * len(self._members)  # each group's next member

    def _step(self) -> int:
        """The next index in nginx's smooth weighted sequence."""
        if self._equal:
            index = self._next
            self._next = (index + 1) % self._count
            return index
        scores, pointers, members = self._scores, self._pointers, self._members
        best = 0
        best_score = 0
        best_index = 0
        for group, weight in enumerate(self._weights):
            score = scores[group] + weight
            scores[group] = score
            index = members[group][pointers[group]]
            if group == 0 or score > best_score or (score == best_score and index < best_index):
                best, best_score, best_index = group, score, index
        pointer = pointers[best] + 1
        if pointer == len(members[best]):  # every member has had its turn at this score
            pointer = 0
            scores[best] -= self._total
        pointers[best] = pointer
        return best_index

    def pick(self, ctx: PickContext) -> T | None:
        targets = self._targets
        if not targets:
            return None
        if self._equal:  # the common case, without a call
            index = self._next
            self._next = (index + 1) % self._count
        else:
            index = self._step()
        state = self._states[index]
        target = targets[index]
        if (
            state.available
            and not (ctx.exclude and target in ctx.exclude)
            and (
                not self._slow_start
                or state.up_since is None
                or state.up_since == self._settled[index]
            )
        ):
            return target
        index = self._pass_on(index, ctx)
        return None if index < 0 else targets[index]

    def _admits(self, index: int, ctx: PickContext) -> bool:
        state = self._states[index]
        if not state.available or (ctx.exclude and self._targets[index] in ctx.exclude):
            return False
        up_since = state.up_since
        if not self._slow_start or up_since is None or up_since == self._settled[index]:
            return True
        share = ramp(up_since, self._clock(), self._slow_start)
        if share >= 1.0:
            self._settled[index] = up_since
            return True
        return self._random() < share

    def _pass_on(self, index: int, ctx: PickContext) -> int:
        """The turn of `index` goes to the next eligible target in the sequence; -1: none."""
        for _ in range(MAX_PASSES):
            if self._admits(index, ctx):
                return index
            index = self._step()
        for offset in range(self._count):
            candidate = (index + offset) % self._count
            if self._states[candidate].available and not (
                ctx.exclude and self._targets[candidate] in ctx.exclude
            ):
                return candidate
        return -1

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        if not self._targets:
            return
        first = self._pass_on(self._step(), ctx)
        if first < 0:
            return
        yield self._targets[first]
        exclude = ctx.exclude
        for offset in range(1, self._count):
            index = (first + offset) % self._count
            target = self._targets[index]
            if self._states[index].available and target not in exclude:
                yield target
