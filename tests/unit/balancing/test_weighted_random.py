"""random: weighted draws whose shares match the weights."""

from __future__ import annotations

from collections import Counter
from random import Random

import pytest
from balancing_support import Clock, nodes, shares, weight_shares
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing import BalancerSettings, PickContext, create

TOLERANCE = 0.025
"""Absolute error in a share over 10,000 draws: five standard deviations of a binomial
share (at most 0.005 at 10,000), so a correct sampler essentially never fails it."""


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(0, 2**16))
def test_shares_over_10000_picks_match_the_weights(ws, seed):
    targets = nodes(ws)
    balancer = create("random", targets, rng=Random(seed).random)
    counts = Counter(balancer.pick(PickContext()) for _ in range(10_000))
    for got, expected in zip(shares(counts, targets), weight_shares(targets), strict=True):
        assert got == pytest.approx(expected, abs=TOLERANCE)


def test_an_excluded_heavy_target_leaves_the_others_their_relative_shares():
    targets = nodes([8, 1, 1])
    balancer = create("random", targets, rng=Random(3).random)
    ctx = PickContext(exclude=frozenset({targets[0]}))
    counts = Counter(balancer.pick(ctx) for _ in range(4000))
    assert set(counts) == {targets[1], targets[2]}
    assert counts[targets[1]] / 4000 == pytest.approx(0.5, abs=TOLERANCE)


def test_with_most_targets_down_the_few_left_are_still_found():
    targets = nodes([1] * 50)
    for target in targets[1:]:
        target.state.set_available(False)
    balancer = create("random", targets, rng=Random(5).random)
    assert {balancer.pick(PickContext()) for _ in range(100)} == {targets[0]}


def test_slow_start_draws_a_returning_target_in_proportion_to_its_ramp():
    clock = Clock()
    targets = nodes([1, 1], clock)
    balancer = create(BalancerSettings("random", slow_start=30.0), targets, clock=clock)
    targets[1].state.set_available(False)
    targets[1].state.set_available(True)
    clock.advance(7.5)  # a quarter of the way: effective weights 1 and 0.25
    counts = Counter(balancer.pick(PickContext()) for _ in range(10_000))
    assert counts[targets[1]] / 10_000 == pytest.approx(0.25 / 1.25, abs=TOLERANCE)
