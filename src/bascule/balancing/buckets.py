"""Targets grouped by score, lowest score first, and within a score in turn.

least_conn and least_load keep their targets in one. Scores take few distinct values (in
flight per weight, reported loads), so targets are kept in one bucket per score and a heap
holds the scores, not the targets:

- `top()`: the lowest score's bucket, its oldest member: O(1) (plus, now and then, popping
  a score whose bucket emptied);
- `move(item, score)`: out of its bucket, to the back of the new score's bucket: O(1), and
  O(log d) when the score is new (d distinct scores). Going to the back is what makes equal
  targets take turns.

A binary heap over the targets themselves needs O(log n) per change, and with many equal
scores every change sifts a target past all of them: five times slower at 1,000 targets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from heapq import heapify, heappop, heappush
from typing import Generic, TypeVar

__all__ = ["ScoreBuckets"]

K = TypeVar("K", float, tuple[float, float])

_SLACK = 64  # scores whose bucket emptied may wait in the heap; past this many, compact


class ScoreBuckets(Generic[K]):
    """Items 0..n-1, each with a score or None (in no bucket: unavailable)."""

    __slots__ = ("_buckets", "_scores", "score")

    def __init__(self, count: int) -> None:
        self.score: list[K | None] = [None] * count
        # Every key of _buckets is in _scores exactly once, its bucket possibly empty.
        self._buckets: dict[K, OrderedDict[int, None]] = {}
        self._scores: list[K] = []

    def move(self, item: int, score: K | None) -> None:
        old = self.score[item]
        if old == score:
            return
        if old is not None:
            del self._buckets[old][item]
        self.score[item] = score
        if score is None:
            return
        bucket = self._buckets.get(score)
        if bucket is None:
            bucket = self._buckets[score] = OrderedDict()
            heappush(self._scores, score)
        bucket[item] = None
        if len(self._scores) > 2 * len(self.score) + _SLACK:
            self._compact()

    def _compact(self) -> None:
        self._buckets = {score: bucket for score, bucket in self._buckets.items() if bucket}
        self._scores = list(self._buckets)
        heapify(self._scores)

    def top(self) -> int:
        """The first item in turn among the lowest score; -1 when no item has a score."""
        scores, buckets = self._scores, self._buckets
        while scores:
            bucket = buckets[scores[0]]
            if bucket:
                return next(iter(bucket))
            del buckets[heappop(scores)]
        return -1

    def ordered(self) -> Iterator[int]:
        """Every present item, lowest score first and in turn within a score. O(n + d log d);
        consume it before the scores change."""
        for score in sorted(self._buckets):
            yield from self._buckets[score]
