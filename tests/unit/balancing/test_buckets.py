"""ScoreBuckets and IndexedHeap, the indexes behind least_conn and least_load."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing.buckets import ScoreBuckets
from bascule.balancing.heap import IndexedHeap

moves = st.lists(st.tuples(st.integers(0, 9), st.none() | st.integers(0, 6)), max_size=300)


@settings(max_examples=60)
@given(moves)
def test_buckets_give_the_lowest_score_oldest_first(operations):
    buckets: ScoreBuckets[float] = ScoreBuckets(10)
    # The reference: each present item with its score and when it last moved.
    moved_at: dict[int, tuple[float, int]] = {}
    for time, (item, score) in enumerate(operations):
        if score is None:
            moved_at.pop(item, None)
        elif moved_at.get(item, (None,))[0] != score:
            moved_at[item] = (float(score), time)
        buckets.move(item, None if score is None else float(score))
        expected = sorted(moved_at, key=lambda i: moved_at[i])
        assert buckets.top() == (expected[0] if expected else -1)
        assert list(buckets.ordered()) == expected


def test_many_distinct_scores_are_compacted_without_losing_items():
    buckets: ScoreBuckets[float] = ScoreBuckets(3)
    for step in range(1000):  # every move a new score: emptied buckets pile up, then go
        buckets.move(step % 3, 1000.0 - step)
    assert len(buckets._scores) <= 2 * 3 + 64 + 1
    assert list(buckets.ordered()) == [999 % 3, 998 % 3, 997 % 3]


@given(st.lists(st.tuples(st.integers(0, 7), st.floats(0, 100)), max_size=100))
def test_the_heap_top_has_the_smallest_key(updates):
    heap = IndexedHeap([(float(i),) for i in range(8)])
    for item, key in updates:
        heap.update(item, (key,))
        assert heap.keys[heap.top()] == min(heap.keys)
