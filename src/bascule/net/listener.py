"""Listening sockets."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable
from ssl import SSLContext
from typing import Any

BACKLOG = 4096  # deep enough for a burst of connections while one worker is busy

log = logging.getLogger("bascule")


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one, as nginx's worker_rlimit_nofile.

    Every proxied exchange holds two descriptors; a default soft limit of 1024 would cap a
    worker at about 500 concurrent exchanges. Returns the limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files limit stays at %d: %s", soft, exc)
        return soft
    return hard


async def listen(
    factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    ssl: SSLContext | None = None,
    handshake_timeout: float | None = None,
) -> asyncio.Server:
    """Accept on host:port, or on `sock` (already bound and listening) when given.

    With `ssl`, connections are TLS: the protocol sees them once the handshake is done, which
    must be within `handshake_timeout` seconds (a client that stalls it holds a socket).
    """
    loop = asyncio.get_running_loop()
    tls: dict[str, Any] = {}
    if ssl is not None:
        tls = {"ssl": ssl, "ssl_handshake_timeout": handshake_timeout}
    if sock is not None:
        return await loop.create_server(factory, sock=sock, backlog=BACKLOG, **tls)
    try:
        return await loop.create_server(factory, host, port, backlog=BACKLOG, **tls)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
