"""The health of every upstream's targets, started and stopped with the server: active
checks (`health`) and passive outlier detection, wired so that a target outlier detection
lets back must pass its active checks first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bascule.upstream.health import HealthChecker, HealthSettings
from bascule.upstream.outlier import OutlierDetector, OutlierSettings
from bascule.upstream.target import Target
from bascule.upstream.upstream import Upstream

if TYPE_CHECKING:
    from bascule import config as cfg

__all__ = ["Guards"]


class Guards:
    """Health checkers and outlier detectors by upstream name."""

    def __init__(self) -> None:
        self.checkers: dict[str, HealthChecker] = {}
        self.detectors: dict[str, OutlierDetector] = {}

    @classmethod
    def from_config(cls, config: cfg.Config, upstreams: Mapping[str, Upstream]) -> Guards:
        guards = cls()
        for name, spec in config.upstreams.items():
            health = (
                HealthSettings.from_config(spec.health, upstreams[name].load_header)
                if spec.health is not None
                else None
            )
            outlier = (
                OutlierSettings.from_config(spec.outlier_detection)
                if spec.outlier_detection is not None
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
        checker = detector = None
        if health is not None:
            checker = self.checkers[upstream.name] = HealthChecker(
                upstream.name, upstream.targets, health
            )
        if outlier is not None:
            # The proxy reports each request's outcome to its target only when something
            # reads it; outlier detection does.
            upstream.feedback = True
            detector = self.detectors[upstream.name] = OutlierDetector(
                upstream.name,
                upstream.targets,
                outlier,
                recheck=checker.recheck if checker is not None else None,
            )
        if checker is not None or detector is not None:

            def follow(added: tuple[Target, ...], removed: tuple[Target, ...]) -> None:
                """Targets come and go with DNS discovery: check and watch the new set."""
                if checker is not None:
                    checker.sync(upstream.targets)
                if detector is not None:
                    detector.sync(upstream.targets)

            upstream.watch_targets(follow)

    def start(self) -> None:
        """Start every checker and detector; needs the running loop."""
        for checker in self.checkers.values():
            checker.start()
        for detector in self.detectors.values():
            detector.start()

    async def stop(self) -> None:
        """Stop them all and wait until no check is left running."""
        for detector in self.detectors.values():
            detector.stop()
        for checker in self.checkers.values():
            await checker.stop()
