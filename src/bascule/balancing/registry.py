"""Balancers by the name the config uses for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bascule.balancing.base import Balancer
from bascule.balancing.round_robin import RoundRobin

BALANCERS: dict[str, Callable[[Sequence[Any]], Balancer[Any]]] = {
    "round_robin": RoundRobin,
}


def create(name: str, targets: Sequence[Any]) -> Balancer[Any]:
    return BALANCERS[name](targets)
