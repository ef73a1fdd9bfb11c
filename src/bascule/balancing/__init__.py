"""Balancers: pick a target for a request from an upstream's targets."""

from bascule.balancing.base import Balancer, PickContext
from bascule.balancing.registry import BALANCERS, create

__all__ = ["BALANCERS", "Balancer", "PickContext", "create"]
