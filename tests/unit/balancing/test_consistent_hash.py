"""hash and ip_hash: ketama consistent hashing, with bounded loads."""

from __future__ import annotations

import math
from collections import Counter
from random import Random

import pytest
from balancing_support import nodes, shares, weight_shares
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing import BalancerSettings, PickContext, create
from bascule.balancing.consistent_hash import key_hash

TOLERANCE = 0.07
"""Absolute error in a share of 10,000 keys. Each target's share of the ring is within
about 8% of its weight's share (160 points per unit of weight; one standard deviation), plus
the keys' own sampling noise; the worst seen over 1,500 weightings of 2-8 targets is 0.05."""

keys = [f"key-{i}".encode() for i in range(10_000)]


def placement(balancer, key_list=keys) -> dict[bytes, object]:
    return {key: balancer.pick(PickContext(hash_key=key)) for key in key_list}


def test_the_hash_is_stable_across_processes_and_versions():
    # Every Bascule node must agree, so the function and the ring are pinned.
    assert key_hash(b"bascule") == 14551687669646595203
    targets = nodes([1, 1, 1, 1, 1])
    balancer = create("hash", targets)
    picked = [balancer.pick(PickContext(hash_key=f"user-{i}".encode())) for i in range(1, 7)]
    assert [targets.index(t) for t in picked] == [4, 0, 0, 4, 2, 3]


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=8))
def test_shares_of_10000_keys_follow_the_weights(ws):
    targets = nodes(ws)
    balancer = create("hash", targets)
    counts = Counter(placement(balancer).values())
    for got, expected in zip(shares(counts, targets), weight_shares(targets), strict=True):
        assert got == pytest.approx(expected, abs=TOLERANCE)


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 10), st.data())
def test_removing_one_of_n_targets_moves_only_its_keys_about_1_in_n(count, data):
    targets = nodes([1] * count)
    removed = data.draw(st.sampled_from(targets))
    sample = keys[:4000]
    before = placement(create("hash", targets), sample)
    after = placement(create("hash", [t for t in targets if t is not removed]), sample)
    moved = [key for key in sample if before[key] is not after[key]]
    assert all(before[key] is removed for key in moved)  # and no others
    assert len(moved) / len(sample) <= 1 / count + TOLERANCE


def test_placement_is_the_same_for_every_balancer_built_on_the_same_targets():
    targets = nodes([1, 2, 3])
    one = create("hash", targets, rng=Random(1).random)
    two = create("hash", list(targets), rng=Random(2).random)
    assert placement(one, keys[:500]) == placement(two, keys[:500])


def test_a_down_target_sends_its_keys_to_their_next_candidate_and_gets_them_back():
    targets = nodes([1, 1, 1, 1])
    balancer = create("hash", targets)
    sample = keys[:2000]
    before = placement(balancer, sample)
    seconds = {k: list(balancer.candidates(PickContext(hash_key=k)))[1] for k in sample}
    down = targets[2]
    down.state.set_available(False)
    during = placement(balancer, sample)
    for key in sample:
        expected = seconds[key] if before[key] is down else before[key]
        assert during[key] is expected
    down.state.set_available(True)
    assert placement(balancer, sample) == before


def test_ip_hash_hashes_the_client_address_and_ignores_the_key():
    targets = nodes([1] * 5)
    balancer = create("ip_hash", targets)
    first = balancer.pick(PickContext(client_ip=b"10.0.0.7", hash_key=b"a"))
    assert all(
        balancer.pick(PickContext(client_ip=b"10.0.0.7", hash_key=bytes([i]))) is first
        for i in range(1, 50)
    )
    spread = {balancer.pick(PickContext(client_ip=f"10.0.{i}.1".encode())) for i in range(200)}
    assert spread == set(targets)


@pytest.mark.parametrize("key", [None, b""])
def test_a_request_without_a_key_is_placed_at_random(key):
    targets = nodes([1] * 4)
    balancer = create("hash", targets, rng=Random(9).random)
    counts = Counter(balancer.pick(PickContext(hash_key=key)) for _ in range(4000))
    assert all(counts[t] / 4000 == pytest.approx(0.25, abs=0.04) for t in targets)


@settings(max_examples=25, deadline=None)
@given(
    ws=st.lists(st.integers(1, 3), min_size=2, max_size=6),
    factor=st.floats(1.05, 2.0),
    steps=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=120),
)
def test_bounded_load_never_puts_a_target_above_its_cap(ws, factor, steps):
    targets = nodes(ws)
    balancer = create(BalancerSettings("hash", bounded_load=factor), targets)
    total_weight = sum(ws)
    in_flight: list = []
    rng = Random(len(steps))
    for key_index, finish in steps:
        if finish and in_flight:
            in_flight.pop(rng.randrange(len(in_flight))).state.finish(0.01)
        # Few keys, so they are hot: without the bound one target would take them all.
        picked = balancer.pick(PickContext(hash_key=b"hot-%d" % key_index))
        total = sum(t.state.in_flight for t in targets) + 1
        cap = math.ceil(factor * total * picked.weight / total_weight)
        assert picked.state.in_flight + 1 <= cap
        picked.state.start()
        in_flight.append(picked)


def test_one_hot_key_spills_to_the_next_targets_under_bounded_load():
    targets = nodes([1] * 4)
    plain = create("hash", targets)
    home = plain.pick(PickContext(hash_key=b"hot"))
    bounded = create(BalancerSettings("hash", bounded_load=1.25), targets)
    for _ in range(100):
        bounded.pick(PickContext(hash_key=b"hot")).state.start()
    # Cap: ceil(1.25 x 100 / 4) = 32 at most for any one target, home included.
    assert home.state.in_flight <= 32
    assert max(t.state.in_flight for t in targets) <= 32
    assert sum(t.state.in_flight for t in targets) == 100
