"""Keep-alive connections to one target: reuse the newest idle one, or open a new one."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Protocol

from bascule.net.tls import describe_handshake_error
from bascule.upstream.connect_errors import ConnectTimeout, TlsHandshakeError
from bascule.upstream.target import Target


class PooledConnection(Protocol):
    @property
    def usable(self) -> bool:
        """Open, idle, and not closed by the target while it waited."""
        ...

    def park(self, pool: ConnectionPool) -> None:
        """Start waiting in the pool (arms the idle timeout)."""
        ...

    def close(self) -> None: ...


class ConnectionPool:
    """Idle connections for one target, newest first (LIFO keeps the warmest ones busy)."""

    __slots__ = (
        "_closed",
        "_factory",
        "_idle",
        "connect_timeout",
        "idle_timeout",
        "max_idle",
        "server_hostname",
        "target",
        "tls",
    )

    def __init__(
        self,
        target: Target,
        factory: Callable[[], asyncio.Protocol],
        *,
        max_idle: int,
        idle_timeout: float,
        connect_timeout: float,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.target = target
        self.tls = tls  # connect with TLS (an upstream with `tls:`)
        # The name sent as SNI and checked in the certificate; None: the target's host (an
        # IP address sends no SNI, and is itself checked).
        self.server_hostname = server_hostname if tls is not None else None
        self._factory = factory
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._idle: list[PooledConnection] = []
        self._closed = False

    def take_idle(self) -> PooledConnection | None:
        """An idle connection ready for a request, without waiting; None if there is none."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
        return None

    def put_back(self, conn: PooledConnection) -> None:
        if self._closed or len(self._idle) >= self.max_idle:
            conn.close()
            return
        self._idle.append(conn)
        conn.park(self)

    def forget(self, conn: PooledConnection) -> None:
        """An idle connection closed (by the target or its idle timeout)."""
        with contextlib.suppress(ValueError):  # already taken out by take_idle
            self._idle.remove(conn)

    async def connect(self) -> asyncio.BaseProtocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):  # the TLS handshake included
                _, protocol = await loop.create_connection(
                    self._factory,
                    self.target.host,
                    self.target.port,
                    ssl=self.tls,
                    server_hostname=self.server_hostname,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"no connection to {self.target.name} within {self.connect_timeout:g}s"
            ) from None
        except ssl.SSLError as exc:
            raise TlsHandshakeError(describe_handshake_error(exc)) from None
        return protocol

    def close(self) -> None:
        """Close every idle connection and refuse new ones (shutdown)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
