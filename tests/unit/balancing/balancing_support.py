"""Plain targets, a clock the test moves, and a load simulation for the balancer tests."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bascule.balancing import Balancer, PickContext, TargetState

NAMES = (
    "round_robin",
    "random",
    "least_conn",
    "power_of_two",
    "least_time",
    "ip_hash",
    "hash",
    "least_load",
    "geo",
)


class Clock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(eq=False)
class Node:
    """A target as balancers see it: identity equality, as the proxy's Target."""

    name: str
    weight: int = 1
    region: str | None = None
    priority: int = 0
    max_load: float | None = None
    state: TargetState = field(default_factory=TargetState)

    def __repr__(self) -> str:
        return f"Node({self.name}, w={self.weight})"


def nodes(weights: Sequence[int], clock: Clock | None = None, **extra: object) -> list[Node]:
    clock = clock or Clock()
    return [
        Node(f"t{i}", w, state=TargetState(clock=clock), **extra)  # type: ignore[arg-type]
        for i, w in enumerate(weights)
    ]


def simulate(
    balancer: Balancer[Node],
    picks: int,
    *,
    concurrency: int,
    seed: int = 1,
    clock: Clock | None = None,
    service: Callable[[Node], float] = lambda node: 0.010,
    ctx: PickContext | None = None,
) -> Counter[Node]:
    """Keep `concurrency` requests in flight: each pick starts one, then one of those in
    flight (chosen at random, so a target finishes in proportion to what it holds)
    finishes after `service(target)` seconds of clock time. Returns picks per target."""
    rng = random.Random(seed)
    ctx = ctx or PickContext()
    counts: Counter[Node] = Counter()
    in_flight: list[Node] = []
    for _ in range(picks):
        target = balancer.pick(ctx)
        assert target is not None
        counts[target] += 1
        target.state.start()
        in_flight.append(target)
        if len(in_flight) >= concurrency:
            done = in_flight.pop(rng.randrange(len(in_flight)))
            seconds = service(done)
            if clock is not None:
                clock.advance(seconds / concurrency)
            done.state.finish(seconds)
    for target in in_flight:
        target.state.finish(service(target))
    return counts


def shares(counts: Counter[Node], targets: Sequence[Node]) -> list[float]:
    total = sum(counts.values())
    return [counts[t] / total for t in targets]


def weight_shares(targets: Sequence[Node]) -> list[float]:
    total = sum(t.weight for t in targets)
    return [t.weight / total for t in targets]
