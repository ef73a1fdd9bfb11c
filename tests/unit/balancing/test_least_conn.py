"""least_conn: fewest requests in flight per unit of weight, ties in turn."""

from __future__ import annotations

from random import Random

import pytest
from balancing_support import Clock, nodes, shares, simulate, weight_shares
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing import BalancerSettings, PickContext, create

TOLERANCE = 0.03
"""Absolute error in a share over 10,000 picks with 2 x (sum of weights) requests in
flight; the worst seen over 60 random weightings is 0.014."""


def key(target) -> float:
    return (target.state.in_flight + 1) / target.weight


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(0, 2**16))
def test_under_load_shares_follow_the_weights(ws, seed):
    clock = Clock()
    targets = nodes(ws, clock)
    balancer = create("least_conn", targets, clock=clock)
    counts = simulate(balancer, 10_000, concurrency=2 * sum(ws), seed=seed, clock=clock)
    for got, expected in zip(shares(counts, targets), weight_shares(targets), strict=True):
        assert got == pytest.approx(expected, abs=TOLERANCE)
    assert all(t.state.in_flight == 0 for t in targets)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=8),
    st.lists(st.tuples(st.sampled_from(["start", "finish", "down", "up"]), st.integers(0, 7))),
)
def test_the_pick_always_has_the_fewest_in_flight_per_weight(ws, operations):
    targets = nodes(ws)
    balancer = create("least_conn", targets)
    for operation, position in operations:
        state = targets[position % len(targets)].state
        if operation == "start":
            state.start()
        elif operation == "finish":
            state.finish(0.01)
        else:
            state.set_available(operation == "up")
        available = [t for t in targets if t.state.available]
        picked = balancer.pick(PickContext())
        if not available:
            assert picked is None
        else:
            assert picked is not None
            assert key(picked) == min(key(t) for t in available)


def test_equal_idle_targets_take_turns():
    targets = nodes([1, 1, 1])
    balancer = create("least_conn", targets)
    order = []
    for _ in range(6):
        picked = balancer.pick(PickContext())
        picked.state.start()
        picked.state.finish(0.01)
        order.append(targets.index(picked))
    assert order == [0, 1, 2, 0, 1, 2]


def test_weight_counts_even_when_idle():
    heavy, light = nodes([3, 1])
    balancer = create("least_conn", [heavy, light])
    placed = []
    for _ in range(4):  # nothing finishes: in flight 0,1,2 on heavy (1/3, 2/3, 3/3)...
        picked = balancer.pick(PickContext())
        picked.state.start()
        placed.append(picked)
    assert placed.count(heavy) == 3
    assert placed.count(light) == 1


def test_candidates_are_in_order_of_load_and_skip_the_excluded():
    a, b, c = nodes([1, 1, 1])
    balancer = create("least_conn", [a, b, c])
    for _ in range(2):
        a.state.start()
    c.state.start()
    assert list(balancer.candidates(PickContext())) == [b, c, a]
    assert balancer.pick(PickContext(exclude=frozenset({b}))) is c
    assert list(balancer.candidates(PickContext(exclude=frozenset({b})))) == [c, a]


def test_slow_start_divides_the_weight_while_ramping():
    clock = Clock()
    steady, returning = nodes([1, 1], clock)
    balancer = create(
        BalancerSettings("least_conn", slow_start=30.0), [steady, returning], clock=clock
    )
    returning.state.set_available(False)
    returning.state.set_available(True)
    for _ in range(3):
        steady.state.start()
    # Returning: (0 + 1) / (1 x 1%) = 100, far above steady's 4.
    assert balancer.pick(PickContext()) is steady
    clock.advance(15.0)  # half-way: (0 + 1) / 0.5 = 2 < 4
    assert balancer.pick(PickContext()) is returning


def test_a_rebuilt_balancer_takes_over_the_feedback():
    targets = nodes([1, 1])
    old = create("least_conn", targets)
    new = create("least_conn", targets)
    targets[0].state.start()
    assert new.pick(PickContext()) is targets[1]
    assert old.pick(PickContext()) in targets  # stale, but harmless: it is not used


def test_random_feedback_keeps_the_heap_consistent():
    rng = Random(11)
    targets = nodes([rng.randint(1, 4) for _ in range(40)])
    balancer = create("least_conn", targets)
    for _ in range(2000):
        target = rng.choice(targets)
        if rng.random() < 0.55:
            target.state.start()
        else:
            target.state.finish(0.01)
        picked = balancer.pick(PickContext())
        assert key(picked) == min(key(t) for t in targets)
