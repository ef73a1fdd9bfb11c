"""A worker's side of shared health checks: follow the board another process writes.

With worker processes, the node's checks run once, in the health process (`HealthChecker`
with a `HealthBoard`); each worker mirrors the board into its own targets' `TargetState`.

Rules:

1. A target the board says is `down` is held out as "health", as a local checker would
   hold it; `up` or `unknown` is not held. A target not on the board yet has the
   configured `initial` status.
2. The first time a worker reads a target that came up from down, its slow start goes on
   from when it came up (the workers of a reload start mid-ramp, not at the start or end).
3. Load reports from checks are taken with the time they were made.
4. `recheck(target)` (outlier detection ending an ejection) holds the target until the
   board shows `healthy` passes in a row, all run after the recheck; it asks the checker
   to run one at once. The hold is this worker's alone: an ejection is never a node-wide
   verdict, and the board's status is not touched.
5. Transitions are logged by the health process, once per node; mirrors stay quiet.
"""

from __future__ import annotations

from collections.abc import Iterable

from bascule.upstream.health import HealthSettings
from bascule.upstream.health_board import Entry, HealthBoard, Status, slot_key
from bascule.upstream.target import Target

__all__ = ["FOLLOW_EVERY", "HealthMirror"]

FOLLOW_EVERY = 0.1
"""Seconds between a worker's reads of the board: a transition reaches the workers within
this of the check that found it."""


class _View:
    """What a worker knows of one target's board slot."""

    __slots__ = ("held", "key", "load_at", "recheck_from", "seen", "slot")

    def __init__(self, key: int) -> None:
        self.key = key
        self.slot: int | None = None  # found on the board
        self.seen = False  # an entry was read at least once (rule 2)
        self.held = False  # this mirror holds the target out, as "health"
        self.load_at: float | None = None  # of the last load report taken
        self.recheck_from: int | None = None  # the board's check count at a recheck (rule 4)


class HealthMirror:
    """The checks of one upstream as the board shows them; `refresh` applies it."""

    def __init__(
        self, upstream: str, targets: Iterable[Target], settings: HealthSettings, board: HealthBoard
    ) -> None:
        self.upstream = upstream
        self.settings = settings
        self._board = board
        self._views: dict[Target, _View] = {}
        self.sync(targets)

    def start(self) -> None:
        """Take the board's word now: before a new worker accepts its first connection."""
        self.refresh()

    async def stop(self) -> None:
        """Nothing runs here: the caller stops calling `refresh`."""

    def sync(self, targets: Iterable[Target]) -> None:
        """Follow a membership change (DNS discovery)."""
        wanted = list(targets)
        for target in set(self._views) - set(wanted):
            del self._views[target]
        for target in wanted:
            if target not in self._views:
                view = self._views[target] = _View(slot_key(self.upstream, target.name))
                self._apply(target, view, None)

    def refresh(self) -> None:
        """Read every target's slot and apply what changed."""
        board = self._board
        for target, view in self._views.items():
            if view.slot is None:
                view.slot = board.find(view.key)
            entry = board.read(view.slot, view.key) if view.slot is not None else None
            if entry is None:
                view.slot = None  # gone or reused: look it up again next time
            self._apply(target, view, entry)

    def recheck(self, target: Target) -> None:
        """Hold `target` until it passes `healthy` fresh checks in a row (rule 4)."""
        view = self._views.get(target)
        if view is None:
            return
        entry = self._board.read(view.slot, view.key) if view.slot is not None else None
        view.recheck_from = entry.checks if entry is not None else 0
        if view.slot is not None:
            self._board.request_check(view.slot)
        self._apply(target, view, entry)

    def _apply(self, target: Target, view: _View, entry: Entry | None) -> None:
        state = target.state
        status = entry.status if entry is not None else self.settings.initial
        healthy = self.settings.healthy
        if (
            entry is not None
            and view.recheck_from is not None
            and entry.checks - view.recheck_from >= healthy
            and entry.passed >= healthy
        ):
            view.recheck_from = None
        held = status is Status.DOWN or view.recheck_from is not None
        if held != view.held:
            view.held = held
            state.set_available(not held, by="health")
        if entry is None:
            return
        if not view.seen:
            view.seen = True
            if status is Status.UP and entry.up_since is not None:
                state.ramp_from(entry.up_since)  # rule 2
        if entry.load is not None and entry.load_at != view.load_at:
            view.load_at = entry.load_at
            state.report_load(entry.load, at=entry.load_at)
