"""power_of_two and least_time: two weighted draws, the less busy (or faster) one wins."""

from __future__ import annotations

from collections import Counter
from random import Random

import pytest
from balancing_support import Clock, nodes, shares, simulate, weight_shares
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing import BalancerSettings, PickContext, create

TOLERANCE = 0.05
"""Absolute error in a share over 10,000 picks with 2 x (sum of weights) requests in
flight; two random choices balance less tightly than a full scan (worst seen: 0.03)."""


@pytest.mark.parametrize("name", ["power_of_two", "least_time"])
@settings(max_examples=5, deadline=None)
@given(ws=st.lists(st.integers(1, 9), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_under_load_shares_follow_the_weights(name, ws, seed):
    clock = Clock()
    targets = nodes(ws, clock)
    balancer = create(name, targets, clock=clock, rng=Random(seed).random)
    counts = simulate(balancer, 10_000, concurrency=2 * sum(ws), seed=seed, clock=clock)
    for got, expected in zip(shares(counts, targets), weight_shares(targets), strict=True):
        assert got == pytest.approx(expected, abs=TOLERANCE)


def test_of_two_targets_the_one_with_fewer_in_flight_wins():
    busy, idle = nodes([1, 1])
    for _ in range(3):
        busy.state.start()
    balancer = create("power_of_two", [busy, idle], rng=Random(1).random)
    assert {balancer.pick(PickContext()) for _ in range(100)} == {idle}


def test_the_most_loaded_of_many_is_almost_never_picked():
    targets = nodes([1] * 10)
    for i, target in enumerate(targets):
        for _ in range(i):
            target.state.start()
    balancer = create("power_of_two", targets, rng=Random(2).random)
    counts = Counter(balancer.pick(PickContext()) for _ in range(5000))
    assert counts[targets[-1]] == 0  # it loses every comparison it is drawn into
    assert counts[targets[0]] > counts[targets[5]] > counts[targets[8]]


def test_least_time_sends_far_fewer_requests_to_a_target_ten_times_slower():
    clock = Clock()
    targets = nodes([1, 1, 1, 1], clock)
    slow = targets[3]
    balancer = create("least_time", targets, clock=clock, rng=Random(4).random)
    counts = simulate(
        balancer,
        10_000,
        concurrency=8,
        seed=4,
        clock=clock,
        service=lambda node: 0.100 if node is slow else 0.010,
    )
    assert counts[slow] / 10_000 < 0.05  # a quarter with round robin
    assert all(counts[t] / 10_000 > 0.28 for t in targets[:3])


def test_least_time_prefers_the_faster_of_two_idle_targets():
    clock = Clock()
    fast, slow = nodes([1, 1], clock)
    fast.state.finish(0.010)
    slow.state.finish(0.100)
    balancer = create("least_time", [fast, slow], clock=clock, rng=Random(5).random)
    assert {balancer.pick(PickContext()) for _ in range(50)} == {fast}
    # ... until the fast one is ten times busier: 0.010 x 11 > 0.100 x 1.
    for _ in range(10):
        fast.state.start()
    assert balancer.pick(PickContext()) is slow


def test_least_time_tries_a_slow_target_again_once_its_estimate_has_decayed():
    clock = Clock()
    fast, slow = nodes([1, 1], clock)
    fast.state.finish(0.010)
    slow.state.finish(1.0)
    balancer = create("least_time", [fast, slow], clock=clock, rng=Random(6).random)
    assert balancer.pick(PickContext()) is fast
    clock.advance(60.0)  # slow's 1 s decays to 2.5 ms, fast's 10 ms to 0.025 ms
    fast.state.finish(0.010)  # but fast keeps being measured
    assert balancer.pick(PickContext()) is slow


@pytest.mark.parametrize("name", ["power_of_two", "least_time"])
def test_slow_start_draws_a_returning_target_less_often(name):
    clock = Clock()
    steady, returning = nodes([1, 1], clock)
    settings = BalancerSettings(name, slow_start=30.0)
    balancer = create(settings, [steady, returning], clock=clock, rng=Random(8).random)
    returning.state.set_available(False)
    returning.state.set_available(True)
    clock.advance(7.5)  # a quarter of the way
    counts = Counter(balancer.pick(PickContext()) for _ in range(10_000))
    # Idle and equal, the first draw wins; the returning one is drawn a fifth of the time.
    assert counts[returning] / 10_000 == pytest.approx(0.25 / 1.25, abs=0.03)
