"""What every algorithm promises (issue 3, item 7): never an unavailable or excluded target,
never the same target twice in one candidate list, and the first candidate is the pick."""

from __future__ import annotations

import random

import pytest
from balancing_support import NAMES, Clock, Node, nodes
from hypothesis import given, settings
from hypothesis import strategies as st

import bascule.config.upstream
from bascule.balancing import BALANCERS, BalancerSettings, PickContext, RegionLookup, create

REGIONS = ("eu", "us", None)


def build(name: str, targets: list[Node], seed: int, clock: Clock):
    settings = BalancerSettings(
        balance=name,
        bounded_load=1.25 if name in ("hash", "ip_hash") else None,
        slow_start=30.0 if name in ("round_robin", "random", "least_conn", "geo") else 0.0,
        regions=RegionLookup({"eu": ["10.1.0.0/16"], "us": ["10.2.0.0/16"]}),
        fallback={"eu": ("us",)},
    )
    return create(settings, targets, clock=clock, rng=random.Random(seed).random)


situations = st.fixed_dictionaries(
    {
        "weights": st.lists(st.integers(1, 9), min_size=1, max_size=7),
        "down": st.sets(st.integers(0, 6)),
        "excluded": st.sets(st.integers(0, 6)),
        "ramping": st.sets(st.integers(0, 6)),
        "loads": st.lists(st.none() | st.integers(0, 100), min_size=7, max_size=7),
        "in_flight": st.lists(st.integers(0, 5), min_size=7, max_size=7),
        "client": st.sampled_from([b"10.1.2.3", b"10.2.9.9", b"192.0.2.1", b""]),
        "key": st.none() | st.binary(min_size=1, max_size=8),
        "seed": st.integers(0, 2**16),
    }
)


def arrange(situation, clock: Clock) -> tuple[list[Node], PickContext]:
    targets = nodes(situation["weights"], clock)
    for i, target in enumerate(targets):
        target.region = REGIONS[i % len(REGIONS)]
        target.priority = i % 2
        target.max_load = 50 if i % 3 == 0 else None
        for _ in range(situation["in_flight"][i]):
            target.state.start()
        if situation["loads"][i] is not None:
            target.state.report_load(situation["loads"][i])
        if i in situation["ramping"]:
            target.state.set_available(False)
            clock.advance(1.0)
            target.state.set_available(True)
        if i in situation["down"]:
            target.state.set_available(False)
    excluded = frozenset(t for i, t in enumerate(targets) if i in situation["excluded"])
    ctx = PickContext(client_ip=situation["client"], hash_key=situation["key"], exclude=excluded)
    return targets, ctx


def eligible(targets: list[Node], ctx: PickContext) -> set[Node]:
    return {t for t in targets if t.state.available and t not in ctx.exclude}


def test_every_config_name_has_a_balancer_and_no_other():
    assert tuple(BALANCERS) == NAMES
    assert bascule.config.upstream.BALANCE_NAMES == NAMES


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None)
@given(situation=situations)
def test_picks_and_candidates_skip_unavailable_and_excluded_targets_without_repeats(
    name, situation
):
    clock = Clock()
    targets, ctx = arrange(situation, clock)
    allowed = eligible(targets, ctx)
    balancer = build(name, targets, situation["seed"], clock)
    for _ in range(20):
        picked = balancer.pick(ctx)
        assert (picked is None) == (not allowed)
        assert picked is None or picked in allowed
    offered = list(balancer.candidates(ctx))
    assert len(offered) == len(set(offered))
    assert set(offered) == allowed


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=12, deadline=None)
@given(situation=situations)
def test_the_first_candidate_is_what_pick_returns(name, situation):
    clock = Clock()
    targets, ctx = arrange(situation, clock)
    picking = build(name, targets, situation["seed"], clock)
    offering = build(name, targets, situation["seed"], clock)
    for _ in range(5):
        assert next(offering.candidates(ctx), None) is picking.pick(ctx)


@pytest.mark.parametrize("name", NAMES)
def test_no_targets_means_no_pick(name):
    balancer = build(name, [], 1, Clock())
    assert balancer.pick(PickContext(client_ip=b"10.1.2.3", hash_key=b"k")) is None
    assert list(balancer.candidates(PickContext())) == []


@pytest.mark.parametrize("name", NAMES)
def test_targets_without_state_work_as_always_available(name):
    class Bare:
        def __init__(self, name: str) -> None:
            self.name = name
            self.weight = 1
            self.region = "eu"

    targets = [Bare("a"), Bare("b")]
    balancer = create(
        BalancerSettings(balance=name, regions=RegionLookup({"eu": ["10.1.0.0/16"]})), targets
    )
    ctx = PickContext(client_ip=b"10.1.0.1", hash_key=b"k")
    assert balancer.pick(ctx) in targets
    assert set(balancer.candidates(ctx)) == set(targets)


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="no balancer is named 'fastest'; known: round_robin"):
        create("fastest", [])
