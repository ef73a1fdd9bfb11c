"""The health process: a node's active health checks, run once for all its workers.

The supervisor forks it next to the workers when the config has `health:` on any upstream.
It resolves DNS targets as a worker does, checks every target, logs each transition once
for the node, and writes every result to the `HealthBoard` the workers follow. Stopped
with SIGTERM; a reload replaces it with one on the new config, which starts from the board
(health and slow start carry over for the targets that stay).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from bascule import config as cfg
from bascule.runtime.build import build_discovery, build_upstreams
from bascule.upstream.guard import Guards
from bascule.upstream.health_board import HealthBoard

__all__ = ["check_health", "has_health_checks"]

log = logging.getLogger("bascule.health")


def has_health_checks(config: cfg.Config) -> bool:
    return any(spec.health is not None for spec in config.upstreams.values())


async def check_health(config: cfg.Config, board: HealthBoard) -> int:
    """Check the targets of `config` until SIGTERM or SIGINT; returns the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    upstreams = build_upstreams(config)
    discovery = build_discovery(config, upstreams)
    guards = Guards.from_config(config, upstreams, role="checker", board=board)
    try:
        await discovery.start()
        guards.start()
        await stop.wait()
    finally:
        await guards.stop()
        await discovery.stop()
        for upstream in upstreams.values():
            upstream.close()
    return 0
