"""A binary min-heap of target indexes whose keys change in place.

least_load keeps its targets' report expiry times in one: the soonest is at the top (O(1)),
and `update` moves a target up or down when its key changes (O(log n)).
"""

from __future__ import annotations

__all__ = ["IndexedHeap", "Key"]

Key = tuple[float, ...]
"""Compared as tuples: the first element decides, the rest break ties."""


class IndexedHeap:
    """Items are 0..n-1; `keys[i]` is item i's key; `top()` has the smallest."""

    __slots__ = ("_heap", "_pos", "keys")

    def __init__(self, keys: list[Key]) -> None:
        self.keys = keys
        self._heap = sorted(range(len(keys)), key=keys.__getitem__)  # sorted is a heap
        self._pos = [0] * len(keys)
        for position, item in enumerate(self._heap):
            self._pos[item] = position

    def top(self) -> int:
        return self._heap[0]

    def update(self, item: int, key: Key) -> None:
        old = self.keys[item]
        self.keys[item] = key
        if key < old:
            self._up(self._pos[item])
        elif key > old:
            self._down(self._pos[item])

    def _up(self, position: int) -> None:
        heap, pos, keys = self._heap, self._pos, self.keys
        item = heap[position]
        key = keys[item]
        while position:
            parent = (position - 1) >> 1
            above = heap[parent]
            if keys[above] <= key:
                break
            heap[position] = above
            pos[above] = position
            position = parent
        heap[position] = item
        pos[item] = position

    def _down(self, position: int) -> None:
        heap, pos, keys = self._heap, self._pos, self.keys
        size = len(heap)
        item = heap[position]
        key = keys[item]
        while True:
            child = 2 * position + 1
            if child >= size:
                break
            right = child + 1
            if right < size and keys[heap[right]] < keys[heap[child]]:
                child = right
            below = heap[child]
            if keys[below] >= key:
                break
            heap[position] = below
            pos[below] = position
            position = child
        heap[position] = item
        pos[item] = position
