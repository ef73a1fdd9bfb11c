"""What every connection of one tcp listener shares: where connections go, its limits and
timeouts, the log; and, per upstream, how a connection is placed on a target."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bascule.balancing import PickContext
from bascule.config.hash_key import HashKey
from bascule.http.client_address import TrustedProxies
from bascule.tcp.sni import ServerNames
from bascule.telemetry.access_log import AccessLog
from bascule.upstream.upstream import Upstream

if TYPE_CHECKING:
    from bascule.tcp.connection import ClientConnection

log = logging.getLogger("bascule.tcp")

REFUSED_LOG_EVERY = 10.0
"""Seconds between two log lines about connections refused at max_connections: a flood of
them must not become a flood of log lines (each still gets its access-log line)."""


class TcpPlan:
    """Where a tcp connection goes: an upstream, what its balancer is told, and the PROXY
    protocol header its targets expect (0: none)."""

    __slots__ = ("_key", "proxy_protocol", "upstream")

    def __init__(
        self, upstream: Upstream, *, proxy_protocol: int = 0, hash_key: HashKey | None = None
    ) -> None:
        self.upstream = upstream
        self.proxy_protocol = proxy_protocol
        # Config checks allow only $remote_addr and literal text in a tcp hash key; None
        # stands for the client address.
        self._key: tuple[bytes | None, ...] | None = (
            None
            if hash_key is None
            else tuple(p if isinstance(p, bytes) else None for p in hash_key.parts)
        )

    def pick_context(self, client_ip: bytes, exclude: frozenset[object]) -> PickContext:
        key = None
        if self._key is not None:
            key = b"".join(client_ip if part is None else part for part in self._key)
        return PickContext(client_ip, key, None, exclude)


class TcpListenerContext:
    __slots__ = (
        "_refused",
        "_refused_logged_at",
        "accept_proxy_protocol",
        "access_log",
        "connections",
        "drained",
        "draining",
        "idle_timeout",
        "max_connections",
        "name",
        "plan",
        "preread_timeout",
        "server_names",
        "trusted_proxies",
    )

    def __init__(
        self,
        name: str,
        plan: TcpPlan | None,
        access_log: AccessLog,
        *,
        server_names: ServerNames[TcpPlan] | None = None,
        accept_proxy_protocol: bool = False,
        trusted_proxies: TrustedProxies | None = None,
        idle_timeout: float = 600.0,
        preread_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        self.name = name
        self.plan = plan  # the default; None: only connections sni_routes match are piped
        self.server_names = server_names  # sni_routes; None: the ClientHello is not read
        self.access_log = access_log
        self.accept_proxy_protocol = accept_proxy_protocol
        self.trusted_proxies = trusted_proxies or TrustedProxies(())
        self.idle_timeout = idle_timeout
        self.preread_timeout = preread_timeout
        self.max_connections = max_connections
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self.drained = asyncio.Event()  # set once draining and the last connection is gone
        self._refused = 0
        self._refused_logged_at = -REFUSED_LOG_EVERY

    @property
    def prereads(self) -> bool:
        """Whether connections wait for a PROXY header or a ClientHello before connecting."""
        return self.accept_proxy_protocol or self.server_names is not None

    def admit(self, conn: ClientConnection, now: float) -> bool:
        """Count `conn` in, or refuse it (False) when the listener is at max_connections."""
        limit = self.max_connections
        if limit is not None and len(self.connections) >= limit:
            self._refused += 1
            if now - self._refused_logged_at >= REFUSED_LOG_EVERY:
                log.warning(
                    "tcp listener %s: at max_connections (%d): refused %d new connection(s) "
                    "since the last such line; raise max_connections if the targets can take more",
                    self.name,
                    limit,
                    self._refused,
                )
                self._refused = 0
                self._refused_logged_at = now
            return False
        self.connections.add(conn)
        return True

    def drain(self) -> None:
        """Stop: connections being piped may finish (until the drain timeout)."""
        self.draining = True
        if not self.connections:
            self.drained.set()

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if self.draining and not self.connections:
            self.drained.set()
