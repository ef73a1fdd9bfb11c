"""Smooth weighted round robin: exact shares per cycle, spread out, failover order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from random import Random

import pytest
from balancing_support import Clock
from balancing_support import nodes as support_nodes
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing import BalancerSettings, PickContext, create


@dataclass(frozen=True)
class Node:
    name: str
    weight: int = 1


weights = st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8)


def nodes(ws: list[int]) -> list[Node]:
    return [Node(f"t{i}", w) for i, w in enumerate(ws)]


def test_weights_5_1_1_are_spread_as_nginx_does():
    a, b, c = Node("a", 5), Node("b", 1), Node("c", 1)
    balancer = create("round_robin", [a, b, c])
    picks = [balancer.pick(PickContext()) for _ in range(7)]
    assert [t.name for t in picks if t] == ["a", "a", "b", "a", "c", "a", "a"]


@given(weights)
def test_every_cycle_gives_each_target_exactly_its_weight(ws):
    targets = nodes(ws)
    balancer = create("round_robin", targets)
    ctx = PickContext()
    for _ in range(3):  # the same shares in every cycle, not just the first
        cycle = Counter(balancer.pick(ctx) for _ in range(sum(ws)))
        assert cycle == {t: t.weight for t in targets}


@settings(max_examples=500)
@given(weights)
def test_every_prefix_is_within_two_picks_of_the_exact_share(ws):
    # What "smooth" means: after k picks each target has had about k * w / W of them. The
    # worst seen is 1.23 picks off (ties among heavy targets); a bursty balancer serving
    # 5:5 as a a a a a b b b b b is 2.5 off after five picks.
    targets = nodes(ws)
    total = sum(ws)
    balancer = create("round_robin", targets)
    ctx = PickContext()
    counts: Counter[Node] = Counter()
    for k in range(1, 2 * total + 1):
        counts[balancer.pick(ctx)] += 1
        for target in targets:
            assert abs(counts[target] * total - k * target.weight) < 2 * total


@given(weights, st.data())
def test_excluded_targets_are_never_picked_nor_offered(ws, data):
    targets = nodes(ws)
    excluded = frozenset(data.draw(st.sets(st.sampled_from(targets), max_size=len(targets) - 1)))
    balancer = create("round_robin", targets)
    ctx = PickContext(exclude=excluded)
    for _ in range(sum(ws)):
        assert balancer.pick(ctx) not in excluded
    offered = list(balancer.candidates(ctx))
    assert set(offered) == set(targets) - excluded
    assert len(offered) == len(set(offered))


def test_pick_returns_none_when_every_target_is_excluded():
    targets = nodes([1, 2])
    balancer = create("round_robin", targets)
    assert balancer.pick(PickContext(exclude=frozenset(targets))) is None


@given(weights)
def test_candidates_start_with_what_pick_would_choose(ws):
    targets = nodes(ws)
    ctx = PickContext()
    picking, offering = create("round_robin", targets), create("round_robin", targets)
    for _ in range(sum(ws)):
        assert next(offering.candidates(ctx)) is picking.pick(ctx)


def nginx_sequence(ws: list[int], picks: int) -> list[int]:
    """nginx's scan, as written in ngx_http_upstream_get_peer: the reference."""
    scores = [0] * len(ws)
    total = sum(ws)
    sequence = []
    for _ in range(picks):
        best = 0
        for i, w in enumerate(ws):
            scores[i] += w
            if scores[i] > scores[best]:
                best = i
        scores[best] -= total
        sequence.append(best)
    return sequence


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=12))
def test_grouping_equal_weights_gives_exactly_nginx_sequence(ws):
    targets = nodes(ws)
    balancer = create("round_robin", targets)
    ctx = PickContext()
    picked = [targets.index(balancer.pick(ctx)) for _ in range(2 * sum(ws) + 3)]
    assert picked == nginx_sequence(ws, len(picked))


def test_a_down_target_turns_go_to_the_others_by_weight():
    clock = Clock()
    targets = support_nodes([3, 3, 1, 1], clock)
    balancer = create("round_robin", targets, clock=clock)
    targets[0].state.set_available(False)
    counts = Counter(balancer.pick(PickContext()) for _ in range(8 * 100))
    assert targets[0] not in counts
    # Without target 0, weights 3:1:1 share the picks; within a pick of 3/5, 1/5, 1/5.
    total = sum(counts.values())
    assert abs(counts[targets[1]] / total - 3 / 5) < 0.02
    assert abs(counts[targets[2]] / total - 1 / 5) < 0.02
    targets[0].state.set_available(True)
    assert targets[0] in {balancer.pick(PickContext()) for _ in range(8)}


def test_slow_start_ramps_a_returning_target_linearly():
    clock = Clock()
    targets = support_nodes([1, 1], clock)
    balancer = create(BalancerSettings(slow_start=30.0), targets, clock=clock, rng=Random(7).random)
    targets[1].state.set_available(False)
    targets[1].state.set_available(True)
    for elapsed, ramp in ((7.5, 0.25), (15.0, 0.5), (30.0, 1.0)):
        clock.now = targets[1].state.up_since + elapsed
        counts = Counter(balancer.pick(PickContext()) for _ in range(4000))
        # Effective weights 1 and `ramp`: the returning target gets ramp / (1 + ramp).
        assert counts[targets[1]] / 4000 == pytest.approx(ramp / (1 + ramp), abs=0.02)
