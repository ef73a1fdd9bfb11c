"""Smooth weighted round robin, as nginx does it.

Each pick adds every target's weight to its running score, takes the highest, and
subtracts the total from the winner. Weights 5:1:1 give a a b a c a a, not a a a a a b c:
heavy targets get their share spread out instead of in bursts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Generic

from bascule.balancing.base import PickContext, T


class RoundRobin(Generic[T]):
    __slots__ = ("_equal", "_next", "_scores", "_targets", "_total", "_weights")

    def __init__(self, targets: Sequence[T]) -> None:
        self._targets = tuple(targets)
        self._weights = tuple(t.weight for t in self._targets)
        self._total = sum(self._weights)
        self._scores = [0] * len(self._targets)
        self._equal = len(set(self._weights)) <= 1  # then a counter is the same, and cheaper
        self._next = 0

    def _pick_index(self) -> int:
        if self._equal:
            index = self._next
            self._next = (index + 1) % len(self._targets)
            return index
        scores = self._scores
        best = 0
        for i, weight in enumerate(self._weights):
            scores[i] += weight
            if scores[i] > scores[best]:
                best = i
        scores[best] -= self._total
        return best

    def pick(self, ctx: PickContext) -> T | None:
        targets = self._targets
        if not targets:
            return None
        if self._equal:  # the common case, without a call
            index = self._next
            self._next = (index + 1) % len(targets)
            target = targets[index]
        else:
            target = targets[self._pick_index()]
        if ctx.exclude and target in ctx.exclude:
            return next(self.candidates(ctx), None)
        return target

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        targets = self._targets
        if not targets:
            return
        first = self._pick_index()
        count = len(targets)
        exclude = ctx.exclude
        for offset in range(count):
            target = targets[(first + offset) % count]
            if target not in exclude:
                yield target
