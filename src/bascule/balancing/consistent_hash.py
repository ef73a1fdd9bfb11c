"""Consistent hashing (`hash` on the request's key, `ip_hash` on the client address): the
same key goes to the same target while that target is there, on every Bascule node.

Ketama, not Maglev. Each target owns `POINTS_PER_WEIGHT` x weight points on a 64-bit ring
(hashes of its name); a key goes to the owner of the first point at or after the key's hash.
Removing a target (or its going down) moves exactly the keys it owned, about its share of
them, and no others: every other point stays where it was. Maglev's lookup table is O(1)
and balances a little better, but rebuilding it after a removal also moves a few keys
between targets that stayed, which is what this balancer exists to avoid. A lookup bisects
one slice of the ring (a table says where each of its 2^k slices starts, about four points
to a slice), so it is O(1) on average; and the ring gives the natural failover order and
the walk that bounded loads need.

Bounded loads (`bounded_load: c`, Mirrokni, Thorup and Zadimoghaddam, 2016; HAProxy's
hash-balance-factor): no target takes a request that would put it above
ceil(c x (in flight + 1) x its weight / available weight); the request walks on to the
next target on the ring. One hot key then spills to its ring successors instead of
overloading its home. With c > 1 a target under its cap is always found; the walk visits
about 1/(c - 1)² targets in the worst case and one in the common case.

Weights are honoured (points per target); slow start is not: affinity comes first, and
bounded_load is the guard against overloading a target that just came back.
Hashes are BLAKE2b, stable across processes, machines and Python versions, so every node
with the same targets agrees.
"""

from __future__ import annotations

import math
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from hashlib import blake2b
from typing import Generic

from bascule.balancing.base import PickContext, T, attribute, states_of
from bascule.balancing.sampling import Random, WeightedSampler, default_random
from bascule.balancing.state import Clock

__all__ = ["MAX_POINTS", "POINTS_PER_WEIGHT", "ConsistentHash", "key_hash"]

POINTS_PER_WEIGHT = 160
"""Ring points per unit of weight (ketama's 160 per server): each target's share of keys is
then within about ±8% (one standard deviation) of its weight's share."""

MAX_POINTS = 1 << 18
"""A ring larger than this (262,144 points, ~5 MB) is scaled down proportionally: points
per unit of weight fall, and with them the removal guarantee becomes approximate."""

_POINTS_PER_DIGEST = 8  # one 64-byte BLAKE2b digest gives eight 64-bit points
_POINTS_PER_SLICE = 4  # a key is looked for only within its slice of the ring


def key_hash(key: bytes) -> int:
    """A key's place on the ring."""
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "big")


def _points(name: str, count: int) -> Iterator[int]:
    for block in range(0, count, _POINTS_PER_DIGEST):
        digest = blake2b(f"{name}#{block // _POINTS_PER_DIGEST}".encode(), digest_size=64)
        raw = digest.digest()
        for offset in range(min(_POINTS_PER_DIGEST, count - block)):
            yield int.from_bytes(raw[offset * 8 : offset * 8 + 8], "big")


class ConsistentHash(Generic[T]):
    __slots__ = (
        "_available_weight",
        "_bound",
        "_in_flight",
        "_key",
        "_owners",
        "_points",
        "_sampler",
        "_seen",
        "_shift",
        "_slices",
        "_states",
        "_targets",
        "_weights",
    )

    def __init__(
        self,
        targets: Sequence[T],
        *,
        key: Callable[[PickContext], bytes | None],
        bounded_load: float | None = None,
        clock: Clock = time.monotonic,
        rng: Random | None = None,
    ) -> None:
        self._targets = tuple(targets)
        self._states = states_of(self._targets, clock)
        self._key = key
        self._weights = [t.weight for t in self._targets]
        self._sampler = WeightedSampler(self._weights, rng or default_random())
        self._bound = bounded_load
        total = sum(self._weights)
        per_weight = min(POINTS_PER_WEIGHT, MAX_POINTS // total) if total else 0
        # The name, not the address object or position, so every node builds the same ring.
        names = [str(attribute(target, "name", target)) for target in self._targets]
        ring = sorted(
            (point, index)
            for index, name in enumerate(names)
            for point in _points(name, max(1, self._weights[index] * per_weight))
        )
        # Arrays: contiguous, so the few points a lookup compares are near each other.
        self._points = array("Q", [point for point, _ in ring])
        self._owners = array("I", [index for _, index in ring])
        # _slices[s]: the first point in slice s (the top bits of a hash); one more at the end.
        bits = max(1, (len(ring) // _POINTS_PER_SLICE).bit_length())
        self._shift = 64 - bits
        self._slices = array(
            "I", [bisect_left(self._points, s << self._shift) for s in range(1 << bits)]
        )
        self._slices.append(len(ring))
        # What bounded loads need: the in-flight total and the weight that can take it.
        self._in_flight = sum(state.in_flight for state in self._states)
        self._seen = [(state.in_flight, state.available) for state in self._states]
        self._available_weight = sum(
            w for w, state in zip(self._weights, self._states, strict=True) if state.available
        )
        if bounded_load:  # only then: a plain ring must not take the watch from another
            for index, state in enumerate(self._states):
                state.watch(self._watcher(index))

    def _watcher(self, index: int) -> Callable[[], None]:
        def changed() -> None:
            state = self._states[index]
            in_flight, available = self._seen[index]
            self._in_flight += state.in_flight - in_flight
            if available != state.available:
                weight = self._weights[index]
                self._available_weight += weight if state.available else -weight
            self._seen[index] = (state.in_flight, state.available)

        return changed

    def _start(self, ctx: PickContext) -> int:
        """The ring position a request starts from; -1 when it has no key."""
        key = self._key(ctx)
        if not key or not self._points:
            return -1
        point = key_hash(key)
        slice_ = point >> self._shift
        slices = self._slices
        position = bisect_left(self._points, point, slices[slice_], slices[slice_ + 1])
        return 0 if position == len(self._points) else position

    def _place(self, ctx: PickContext, start: int) -> int:
        """The chosen target's index, or -1 when none can take the request."""
        states, targets, exclude = self._states, self._targets, ctx.exclude
        if start < 0:
            chosen = self._sampler.draw_eligible(states, targets, exclude)
            return -1 if chosen is None else chosen
        owners = self._owners
        size = len(owners)
        if self._bound is None:
            for step in range(size):
                index = owners[(start + step) % size]
                if states[index].available and not (exclude and targets[index] in exclude):
                    return index
            return -1
        return self._place_bounded(start, exclude)

    def _place_bounded(self, start: int, exclude: frozenset[object]) -> int:
        assert self._bound is not None
        states, targets, owners = self._states, self._targets, self._owners
        size = len(owners)
        per_weight = self._bound * (self._in_flight + 1) / max(self._available_weight, 1)
        visited: set[int] = set()
        fallback, fallback_fill = -1, math.inf
        for step in range(size):
            index = owners[(start + step) % size]
            if index in visited:
                continue
            visited.add(index)
            state = states[index]
            if state.available and not (exclude and targets[index] in exclude):
                cap = math.ceil(per_weight * self._weights[index])
                if state.in_flight < cap:
                    return index
                fill = state.in_flight / cap
                if fill < fallback_fill:  # every target full: the least full one
                    fallback, fallback_fill = index, fill
            if len(visited) == len(targets):
                break
        return fallback

    def pick(self, ctx: PickContext) -> T | None:
        start = self._start(ctx)
        if start >= 0 and self._bound is None:  # the common case: its owner takes it
            index = self._owners[start]
            target = self._targets[index]
            if self._states[index].available and not (ctx.exclude and target in ctx.exclude):
                return target
        index = self._place(ctx, start)
        return None if index < 0 else self._targets[index]

    def candidates(self, ctx: PickContext) -> Iterator[T]:
        """The placed target, then the others in ring order from the key: failover is as
        consistent as placement (every node tries the same second target)."""
        start = self._start(ctx)
        first = self._place(ctx, start)
        if first < 0:
            return
        yield self._targets[first]
        start = max(start, 0)
        owners, states, exclude = self._owners, self._states, ctx.exclude
        seen = {first}
        size = len(owners)
        for step in range(size):
            if len(seen) == len(self._targets):
                return
            index = owners[(start + step) % size]
            if index in seen:
                continue
            seen.add(index)
            if states[index].available and self._targets[index] not in exclude:
                yield self._targets[index]


def hash_key(ctx: PickContext) -> bytes | None:
    return ctx.hash_key


def client_ip(ctx: PickContext) -> bytes | None:
    return ctx.client_ip
