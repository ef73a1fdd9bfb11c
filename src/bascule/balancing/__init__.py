"""Balancers: pick a target for a request from an upstream's targets.

`create(settings, targets, clock=...)` builds one by its config name; `TargetState` is what
the proxy and health checks report into (see `base` for the feedback contract).
"""

from bascule.balancing.base import Balancer, PickContext, TargetView
from bascule.balancing.regions import MmdbRegions, RegionLookup
from bascule.balancing.registry import BALANCERS, create
from bascule.balancing.settings import BalancerSettings
from bascule.balancing.state import TargetState, parse_load_body, parse_load_header

__all__ = [
    "BALANCERS",
    "Balancer",
    "BalancerSettings",
    "MmdbRegions",
    "PickContext",
    "RegionLookup",
    "TargetState",
    "TargetView",
    "create",
    "parse_load_body",
    "parse_load_header",
]
