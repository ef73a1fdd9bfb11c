"""The health of every upstream's targets, started and stopped with the server: active
checks (`health`) and passive outlier detection, wired so that a target outlier detection
lets back must pass its active checks first.

Where the active checks run depends on the process (`Role`):
- "alone": a single process (`bascule demo`, `serve` embedded) checks its own targets;
- "checker": the node's health process checks and writes every result to the board;
- "worker": a worker process mirrors the board, and runs outlier detection on its traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Literal, Protocol

from bascule.upstream.health import HealthChecker, HealthSettings
from bascule.upstream.health_board import HealthBoard
from bascule.upstream.health_mirror import FOLLOW_EVERY, HealthMirror
from bascule.upstream.outlier import OutlierDetector, OutlierSettings
from bascule.upstream.target import Target
from bascule.upstream.upstream import Upstream

if TYPE_CHECKING:
    from bascule import config as cfg

__all__ = ["Guards", "Role"]

Role = Literal["alone", "checker", "worker"]


class Checks(Protocol):
    """One upstream's active checks: run here (`HealthChecker`) or followed (`HealthMirror`)."""

    def start(self) -> None: ...
    async def stop(self) -> None: ...
    def sync(self, targets: Iterable[Target]) -> None: ...
    def recheck(self, target: Target) -> None: ...


class Guards:
    """Health checks and outlier detectors by upstream name."""

    def __init__(
        self,
        role: Role = "alone",
        board: HealthBoard | None = None,
        on_eject: Callable[[str], None] | None = None,
    ) -> None:
        if (board is None) != (role == "alone"):
            raise ValueError(f"a {role} {'needs' if board is None else 'has no'} health board")
        self.role = role
        self.board = board
        self.on_eject = on_eject  # each ejection, by upstream name (metrics)
        self.checkers: dict[str, HealthChecker] = {}
        self.mirrors: dict[str, HealthMirror] = {}
        self.detectors: dict[str, OutlierDetector] = {}
        self._follower: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls,
        config: cfg.Config,
        upstreams: Mapping[str, Upstream],
        role: Role = "alone",
        board: HealthBoard | None = None,
        on_eject: Callable[[str], None] | None = None,
    ) -> Guards:
        guards = cls(role, board, on_eject)
        for name, spec in config.upstreams.items():
            health = (
                HealthSettings.from_config(spec.health, upstreams[name].load_header)
                if spec.health is not None
                else None
            )
            outlier = (
                OutlierSettings.from_config(spec.outlier_detection)
                if spec.outlier_detection is not None and role != "checker"
                else None
            )
            guards.add(upstreams[name], health, outlier)
        return guards

    def add(
        self,
        upstream: Upstream,
        health: HealthSettings | None = None,
        outlier: OutlierSettings | None = None,
    ) -> None:
        """Guard `upstream` with active checks, outlier detection, both or neither."""
        checks: Checks | None = None
        detector = None
        if health is not None and self.board is not None and self.role == "worker":
            checks = self.mirrors[upstream.name] = HealthMirror(
                upstream.name, upstream.targets, health, self.board
            )
        elif health is not None:
            checks = self.checkers[upstream.name] = HealthChecker(
                upstream.name, upstream.targets, health, board=self.board
            )
        if outlier is not None:
            # The proxy reports each request's outcome to its target only when something
            # reads it; outlier detection does.
            upstream.feedback = True
            detector = self.detectors[upstream.name] = OutlierDetector(
                upstream.name,
                upstream.targets,
                outlier,
                recheck=checks.recheck if checks is not None else None,
                on_eject=self.on_eject,
            )
        if checks is not None or detector is not None:

            def follow(added: tuple[Target, ...], removed: tuple[Target, ...]) -> None:
                """Targets come and go with DNS discovery: check and watch the new set."""
                if checks is not None:
                    checks.sync(upstream.targets)
                if detector is not None:
                    detector.sync(upstream.targets)

            upstream.watch_targets(follow)

    def start(self) -> None:
        """Start every check and detector; needs the running loop. A worker has read the
        board once when this returns; a checker has cleared the board of the targets its
        config no longer has."""
        if self.board is not None and self.role == "checker":
            keys = set[int]().union(*(c.board_keys() for c in self.checkers.values()))
            self.board.retire_all_but(keys)
        for checks in self._checks():
            checks.start()
        for detector in self.detectors.values():
            detector.start()
        if self.board is not None and (self.checkers or self.mirrors):
            self._follower = asyncio.get_running_loop().create_task(
                self._follow_board(), name="health board"
            )

    async def stop(self) -> None:
        """Stop them all and wait until no check is left running."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for detector in self.detectors.values():
            detector.stop()
        for checks in self._checks():
            await checks.stop()

    def _checks(self) -> list[Checks]:
        return [*self.checkers.values(), *self.mirrors.values()]

    async def _follow_board(self) -> None:
        """Workers read the checker's results; the checker reads the workers' requests."""
        while True:
            await asyncio.sleep(FOLLOW_EVERY)
            for checker in self.checkers.values():
                checker.follow_board()
            for mirror in self.mirrors.values():
                mirror.refresh()
