"""The admin process: the node's admin listener (metrics and status), one per node.

The supervisor forks it when the config has `admin:`, on a socket it bound (so a reload
refuses no admin connection), and replaces it on every reload. It reads only the node's
telemetry directory and the health board: it holds no state of its own to lose.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path

from bascule.admin.server import AdminApi, serve_admin
from bascule.telemetry.node import TelemetryDir
from bascule.upstream.health_board import HealthBoard

__all__ = ["run_admin"]

log = logging.getLogger("bascule.admin")


async def run_admin(
    sock: socket.socket, telemetry: TelemetryDir, board: HealthBoard, token: bytes | None
) -> int:
    """Serve the admin API on `sock` until SIGTERM or SIGINT; returns the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = sock.getsockname()[:2]
    log.info("admin listener: metrics on http://%s:%d/metrics", host, port)
    await serve_admin(AdminApi(telemetry, board, token), sock, stop)
    return 0


def read_token(path: str) -> bytes:
    """The admin token in `path` (surrounding whitespace ignored); OSError or ValueError
    saying what is wrong with the file."""
    token = Path(path).read_bytes().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the admin token must be at least 16 characters")
    return token
