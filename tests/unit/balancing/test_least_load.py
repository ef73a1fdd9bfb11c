"""least_load: the least-loaded target by reported load, tier by tier, with spill-over."""

from __future__ import annotations

import pytest
from balancing_support import Clock, Node, nodes
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.balancing import BalancerSettings, PickContext, TargetState, create


def seed_example(clock: Clock) -> tuple[Node, Node, Node]:
    """The seed's rule, as docs/balancing.md configures it: A while its load is under 50,
    else B while its load is under 75, else C."""
    a = Node("A", priority=0, max_load=50, state=TargetState(clock=clock))
    b = Node("B", priority=1, max_load=75, state=TargetState(clock=clock))
    c = Node("C", priority=2, state=TargetState(clock=clock))
    return a, b, c


@pytest.mark.parametrize("load_a", [0, 30, 49, 49.9, 50, 51, 80, 100])
@pytest.mark.parametrize("load_b", [0, 60, 74, 74.9, 75, 90, 100])
def test_the_seed_tiers_a_under_50_else_b_under_75_else_c(load_a, load_b):
    clock = Clock()
    a, b, c = seed_example(clock)
    balancer = create("least_load", [a, b, c], clock=clock)
    a.state.report_load(load_a)
    b.state.report_load(load_b)
    c.state.report_load(95)
    expected = a if load_a < 50 else b if load_b < 75 else c
    assert balancer.pick(PickContext()) is expected


def test_the_seed_tiers_follow_changing_loads():
    clock = Clock()
    a, b, c = seed_example(clock)
    balancer = create("least_load", [a, b, c], clock=clock)
    assert balancer.pick(PickContext()) is a  # nothing reported yet: all count as 0
    timeline = [(a, 20, a), (a, 55, b), (b, 70, b), (b, 80, c), (a, 45, a), (a, 50, c)]
    for target, load, expected in timeline:
        clock.advance(1)
        target.state.report_load(load)
        assert balancer.pick(PickContext()) is expected, (target.name, load)


def test_a_stale_report_counts_as_the_average_of_the_fresh_ones():
    clock = Clock()
    a, b, c = nodes([1, 1, 1], clock)
    balancer = create(BalancerSettings("least_load", load_max_age=5.0), [a, b, c], clock=clock)
    a.state.report_load(10)
    clock.advance(3)
    b.state.report_load(40)
    c.state.report_load(60)
    assert balancer.pick(PickContext()) is a
    clock.advance(2.5)  # a's report is 5.5 s old: a counts as (40 + 60) / 2 = 50
    assert balancer.pick(PickContext()) is b
    clock.advance(3)  # every report is stale: all unknown, all equal
    assert balancer.pick(PickContext()) in {a, b, c}
    a.state.report_load(99)
    a.state.start()
    # b and c are unknown, so they count as the only known load, 99: a tie that a's
    # request in flight breaks.
    assert balancer.pick(PickContext()) in {b, c}


def test_within_a_tier_the_least_loaded_wins():
    clock = Clock()
    targets = nodes([1, 1, 1, 1], clock)
    balancer = create("least_load", targets, clock=clock)
    for target, load in zip(targets, [40, 12, 30, 12.5], strict=True):
        target.state.report_load(load)
    assert balancer.pick(PickContext()) is targets[1]


def test_equal_loads_are_split_by_requests_in_flight_per_weight():
    clock = Clock()
    heavy, light = nodes([2, 1], clock)
    balancer = create("least_load", [heavy, light], clock=clock)
    heavy.state.report_load(20)
    light.state.report_load(20)
    placed = []
    for _ in range(6):
        picked = balancer.pick(PickContext())
        picked.state.start()
        placed.append(picked)
    assert placed.count(heavy) == 4
    assert placed.count(light) == 2


def test_when_every_tier_is_full_the_least_loaded_target_anywhere_takes_it():
    clock = Clock()
    a = Node("a", priority=0, max_load=50, state=TargetState(clock=clock))
    b = Node("b", priority=1, max_load=50, state=TargetState(clock=clock))
    balancer = create("least_load", [a, b], clock=clock)
    a.state.report_load(90)
    b.state.report_load(70)
    assert balancer.pick(PickContext()) is b
    assert list(balancer.candidates(PickContext())) == [b, a]


def test_a_down_or_excluded_target_is_passed_over_for_its_tier_mate():
    clock = Clock()
    a1 = Node("a1", priority=0, max_load=50, state=TargetState(clock=clock))
    a2 = Node("a2", priority=0, max_load=50, state=TargetState(clock=clock))
    b = Node("b", priority=1, state=TargetState(clock=clock))
    balancer = create("least_load", [a1, a2, b], clock=clock)
    a1.state.report_load(10)
    a2.state.report_load(20)
    b.state.report_load(0)
    assert balancer.pick(PickContext()) is a1
    assert balancer.pick(PickContext(exclude=frozenset({a1}))) is a2
    assert list(balancer.candidates(PickContext())) == [a1, a2, b]
    a1.state.set_available(False)
    assert balancer.pick(PickContext()) is a2


def reference(targets: list[Node], now: float, max_age: float) -> set[Node]:
    """A scan that states the rule plainly: the targets the balancer may return."""
    fresh = [t.state.fresh_load(now, max_age) for t in targets]
    known = [load for load in fresh if load is not None]
    average = sum(known) / len(known) if known else 0.0
    up = [(t, average if f is None else f) for t, f in zip(targets, fresh, strict=True)]
    up = [(t, load) for t, load in up if t.state.available]
    if not up:
        return set()

    def best(group):
        lowest = min((load, (t.state.in_flight + 1) / t.weight) for t, load in group)
        return {t for t, load in group if (load, (t.state.in_flight + 1) / t.weight) == lowest}

    for priority in sorted({t.priority for t, _ in up}):
        tier = [(t, load) for t, load in up if t.priority == priority]
        winners = best(tier)
        sample = next(iter(winners))
        load = dict(tier)[sample]
        if sample.max_load is None or load < sample.max_load:
            return winners
    return best(up)


@settings(max_examples=60, deadline=None)
@given(
    tiers=st.lists(st.integers(0, 2), min_size=1, max_size=7),
    caps=st.lists(st.none() | st.integers(10, 90), min_size=3, max_size=3),
    events=st.lists(
        st.tuples(
            st.sampled_from(["report", "start", "finish", "down", "up", "wait"]),
            st.integers(0, 6),
            st.integers(0, 100),
        ),
        max_size=40,
    ),
)
def test_the_pick_is_what_a_plain_scan_allows(tiers, caps, events):
    clock = Clock()
    targets = [
        Node(f"t{i}", priority=p, max_load=caps[p], state=TargetState(clock=clock))
        for i, p in enumerate(tiers)
    ]
    balancer = create(BalancerSettings("least_load", load_max_age=5.0), targets, clock=clock)
    for kind, position, value in events:
        state = targets[position % len(targets)].state
        if kind == "report":
            state.report_load(value)
        elif kind == "start":
            state.start()
        elif kind == "finish":
            state.finish(0.01)
        elif kind == "wait":
            clock.advance(value / 20)
        else:
            state.set_available(kind == "up")
        allowed = reference(targets, clock.now, 5.0)
        picked = balancer.pick(PickContext())
        assert picked in allowed if allowed else picked is None


def test_targets_that_have_not_reported_yet_are_not_starved():
    """Reports come with responses: a target that never gets a request never reports. On a
    tie with the average, the unreported target goes first, so each one soon reports."""
    clock = Clock()
    targets = nodes([1, 1, 1, 1], clock)
    balancer = create("least_load", targets, clock=clock)
    served = set()
    for _ in range(8):  # one request at a time, each target reporting 10 when it answers
        target = balancer.pick(PickContext())
        assert target is not None
        served.add(target)
        target.state.start()
        target.state.report_load(10)
        target.state.finish(0.01)
    assert served == set(targets)
