"""The Balancer contract: what every algorithm implements, the narrow context it reads, what
it may know of a target, and the feedback the proxy owes it.

Lifecycle
---------
A balancer is built by `balancing.create(settings, targets, clock=...)` from an immutable
tuple of targets, and rebuilt (never mutated) when membership changes. Per request the proxy
calls `pick(ctx)`; when that target cannot be reached it walks `candidates(ctx)` with the
tried targets in `ctx.exclude`.

What a balancer reads of a target (`TargetView`)
------------------------------------------------
`weight` and `name` always; `region`, `priority` and `max_load` where the algorithm uses
them (read once, when the balancer is built; absent means None, 0 and None); and `state`, a
`TargetState` the target owns for its whole life. A target without `state` (a plain object
in a test or a tool) gets one of its own that nobody reports to: always available, idle.

Feedback the proxy must give (all on `target.state`, each O(1))
---------------------------------------------------------------
- `state.start()` when a request is sent to the target;
- `state.finish(seconds, ok)` exactly once per start, when it ends however it ends;
- `state.report_load(load)` when a response (header `load_header`) or a health check
  (that header, or a JSON body {"load": 42}) reports the target's load; parse with
  `parse_load_header` / `parse_load_body` and drop what they return None for;
- `state.set_available(flag)` when the target goes down or comes up, or starts draining;
- a target added to a running upstream is created with `TargetState(up_since=clock())`,
  so slow start ramps it; targets present at start are not ramped.

Balancers never touch HTTP: the proxy turns the request into a `PickContext` (client
address, hash key, override, tried targets) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, TypeVar

from bascule.balancing.state import Clock, TargetState

__all__ = [
    "Balancer",
    "PickContext",
    "TargetView",
    "Weighted",
    "attribute",
    "states_of",
]


class Weighted(Protocol):
    """What a balancer may know of a target: nothing about HTTP or sockets."""

    @property
    def weight(self) -> int: ...


class TargetView(Weighted, Protocol):
    """The whole of what balancers read; see the module docstring for the optional parts."""

    @property
    def name(self) -> str:
        """Stable across restarts and nodes ("10.0.0.1:8080"): consistent hashing uses it."""
        ...

    @property
    def state(self) -> TargetState: ...


T = TypeVar("T", bound=Weighted)
T_co = TypeVar("T_co", bound=Weighted, covariant=True)


class PickContext:
    """Everything a balancer may use to choose; never the HTTP request itself.

    - `client_ip`: the client's address as text bytes (b"10.1.2.3", b"2001:db8::1"), after
      trusted-proxy handling; ip_hash hashes it, geo looks its region up.
    - `hash_key`: the `key:` template evaluated for this request (hash); None or b"" when
      it has no value, and the request is then placed at random.
    - `override`: a target a filter insists on (sticky sessions).
    - `exclude`: targets already tried for this request.
    """

    __slots__ = ("client_ip", "exclude", "hash_key", "override")

    def __init__(
        self,
        client_ip: bytes = b"",
        hash_key: bytes | None = None,
        override: object | None = None,
        exclude: frozenset[object] = frozenset(),
    ) -> None:
        self.client_ip = client_ip
        self.hash_key = hash_key
        self.override = override  # a target a filter insists on (sticky sessions)
        self.exclude = exclude  # targets already tried for this request


class Balancer(Protocol[T_co]):
    """Built once from an immutable tuple of targets; rebuilt when membership changes.

    Both methods skip targets that are unavailable (`state.available` False) or in
    `ctx.exclude`, and `candidates` never yields a target twice.
    """

    def pick(self, ctx: PickContext) -> T_co | None:
        """The target for this request, or None if there is none: the first candidate.

        The per-request fast path: no generator, no list, O(1) or O(log n).
        """
        ...

    def candidates(self, ctx: PickContext) -> Iterator[T_co]:
        """Targets in order of preference: the first is the pick, the rest are failover."""
        ...


def attribute(target: object, name: str, default: object = None) -> object:
    """An optional static attribute of a target, read once when a balancer is built."""
    return getattr(target, name, default)


def states_of(targets: Sequence[object], clock: Clock) -> tuple[TargetState, ...]:
    """Each target's live state, index-aligned; a stateless target gets a private one."""
    states = []
    for target in targets:
        state = getattr(target, "state", None)
        states.append(state if isinstance(state, TargetState) else TargetState(clock=clock))
    return tuple(states)
