"""Per-pick cost of every balancer, with 10 and 1,000 targets: µs per pick, in-process.

Two figures per algorithm and size:

- `pick`: `balancer.pick(ctx)` alone, the state left as set up (some requests in flight,
  loads reported, response times measured);
- `pick+feedback`: a pick, then `state.start()` on the target and `state.finish()` on a
  request started earlier: what the proxy pays per request, index upkeep included.

Weights cycle 1, 2, 3 (so round_robin takes its weighted path), least_load has three
tiers, geo four regions with a CIDR table, and hash keys / client addresses are drawn from
10,000 distinct values. Best of `--rounds` runs; run on a quiet machine.

    .venv/bin/python bench/balancers.py [--picks 20000] [--rounds 3] [--sizes 10,1000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import deque
from dataclasses import dataclass, field

from bascule.balancing import BalancerSettings, PickContext, RegionLookup, TargetState, create

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
REGIONS = ("eu-west", "us-east", "ap-south", "sa-east")


@dataclass(eq=False)
class Target:
    name: str
    weight: int
    region: str
    priority: int
    max_load: float | None
    state: TargetState = field(default_factory=TargetState)


def targets_for(count: int, rng: random.Random) -> list[Target]:
    targets = []
    for i in range(count):
        tier = i % 3
        target = Target(
            name=f"10.{i // 250}.{i % 250}.1:8080",
            weight=1 + i % 3,
            region=REGIONS[i % len(REGIONS)],
            priority=tier,
            max_load=(50.0, 75.0, None)[tier],
        )
        target.state.finish(rng.uniform(0.005, 0.050))
        target.state.report_load(rng.randrange(101))  # servers report whole percents
        targets.append(target)
    return targets


def contexts(name: str, rng: random.Random) -> list[PickContext]:
    if name == "hash":
        return [PickContext(hash_key=f"session-{i}".encode()) for i in range(10_000)]
    if name in ("ip_hash", "geo"):
        return [
            PickContext(client_ip=f"10.{rng.randrange(4)}.{rng.randrange(256)}.{i % 250}".encode())
            for i in range(10_000)
        ]
    return [PickContext()]


def measure(name: str, count: int, picks: int, rounds: int) -> tuple[float, float]:
    rng = random.Random(count)
    targets = targets_for(count, rng)
    settings = BalancerSettings(
        balance=name,
        regions=RegionLookup({r: [f"10.{i}.0.0/16"] for i, r in enumerate(REGIONS)}),
        fallback={"eu-west": ("us-east",)},
    )
    balancer = create(settings, targets, rng=random.Random(1).random)
    ctxs = contexts(name, rng)
    started: deque[Target] = deque()
    for _ in range(min(count, 64)):  # some requests in flight
        target = balancer.pick(ctxs[0])
        assert target is not None
        target.state.start()
        started.append(target)
    best_pick = best_full = float("inf")
    for _ in range(rounds):
        gc.disable()
        pick = balancer.pick
        n = len(ctxs)
        begin = time.perf_counter()
        for i in range(picks):
            pick(ctxs[i % n])
        best_pick = min(best_pick, (time.perf_counter() - begin) / picks)
        begin = time.perf_counter()
        for i in range(picks):
            target = pick(ctxs[i % n])
            assert target is not None
            target.state.start()
            started.append(target)
            started.popleft().state.finish(0.01)
        best_full = min(best_full, (time.perf_counter() - begin) / picks)
        gc.enable()
    return best_pick * 1e6, best_full * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--picks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10,1000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    header = " | ".join(f"{size} targets: pick | pick+feedback" for size in sizes)
    print(f"| balance | {header} |")
    print("|---|" + "---:|---:|" * len(sizes))
    for name in NAMES:
        cells = []
        for size in sizes:
            pick, full = measure(name, size, args.picks, args.rounds)
            cells.append(f"{pick:.2f} | {full:.2f}")
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print("\nµs per pick, best of", args.rounds, "rounds of", args.picks, "picks.")


if __name__ == "__main__":
    main()
