"""Listening sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

BACKLOG = 4096  # deep enough for a burst of connections while one worker is busy


async def listen(
    factory: Callable[[], asyncio.Protocol], host: str, port: int, *, reuse_port: bool = False
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(
            factory, host, port, backlog=BACKLOG, reuse_port=reuse_port or None
        )
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
