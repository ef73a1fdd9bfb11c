"""A target: one backend address with its weight, region and pool of connections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bascule.balancing.state import TargetState

if TYPE_CHECKING:
    from bascule.upstream.connection_pool import ConnectionPool


class Target:
    __slots__ = (
        "active",
        "address",
        "backup",
        "host",
        "max_conns",
        "max_load",
        "name",
        "pool",
        "port",
        "priority",
        "region",
        "state",
        "weight",
    )

    def __init__(
        self,
        host: str,
        port: int,
        weight: int = 1,
        region: str | None = None,
        *,
        priority: int = 0,
        max_load: float | None = None,
        state: TargetState | None = None,
        max_conns: int | None = None,
        backup: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.weight = weight
        self.region = region
        self.priority = priority  # least_load's tier, lower first
        self.max_load = max_load  # least_load: the tier spills over above this load
        self.max_conns = max_conns  # requests carried at once; None: no limit
        self.active = 0  # requests carried now (counted only when max_conns is set upstream)
        self.backup = backup  # takes traffic only when every primary target is down
        self.state = state or TargetState()  # live: in flight, response time, load, up/down
        self.name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.address = self.name.encode()  # as a Host header value when Host is not preserved
        self.pool: ConnectionPool

    def __repr__(self) -> str:
        return f"Target({self.name}, weight={self.weight})"
