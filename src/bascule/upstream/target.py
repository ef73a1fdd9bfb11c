"""A target: one backend address with its weight, region and pool of connections."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bascule.upstream.connection_pool import ConnectionPool


class Target:
    __slots__ = ("address", "host", "name", "pool", "port", "region", "weight")

    def __init__(self, host: str, port: int, weight: int = 1, region: str | None = None) -> None:
        self.host = host
        self.port = port
        self.weight = weight
        self.region = region
        self.name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.address = self.name.encode()  # as a Host header value when Host is not preserved
        self.pool: ConnectionPool

    def __repr__(self) -> str:
        return f"Target({self.name}, weight={self.weight})"
