"""The Balancer contract: what every algorithm implements, and the narrow context it reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar


class Weighted(Protocol):
    """What a balancer may know of a target: nothing about HTTP or sockets."""

    @property
    def weight(self) -> int: ...


T = TypeVar("T", bound=Weighted)
T_co = TypeVar("T_co", bound=Weighted, covariant=True)


class PickContext:
    """Everything a balancer may use to choose; never the HTTP request itself."""

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
    """Built once from an immutable tuple of targets; rebuilt when membership changes."""

    def pick(self, ctx: PickContext) -> T_co | None:
        """The target for this request, or None if there is none: the first candidate."""
        ...

    def candidates(self, ctx: PickContext) -> Iterator[T_co]:
        """Targets in order of preference: the first is the pick, the rest are failover."""
        ...
