"""Active health checks: each target of an upstream is probed on its own timer, and counted
results in a row move it between unknown, up and down.

Rules:

1. A target is `unknown`, `up` or `down` (`Status`). Only `down` keeps it out of service,
   as the "health" holder of its `TargetState` (`set_available(False, by="health")`), so a
   check never undoes an ejection or a drain.
2. From `unknown` the first result decides, either way. From `up`, `unhealthy` failures in
   a row take it down; from `down`, `healthy` passes in a row bring it up. A result the
   other way resets the count (`Tally`).
3. Each transition is logged once, with the result that caused it ("GET /healthz → 503",
   "connect refused", "timeout 1s (no connection)").
4. Checks run one at a time per target: the next starts `interval` (± jitter) after the
   previous one ended, so a slow target is never probed by two checks at once.
5. The checker writes `TargetState`, and with a `HealthBoard` every result too: with
   worker processes, one process of the node runs the checks and the workers follow the
   board (`HealthMirror`). A target found on the board starts from the status written
   there (a restarted checker, a reload), not from `initial`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bascule.config.units import format_duration
from bascule.upstream.health_board import Entry, HealthBoard, Status, slot_key
from bascule.upstream.probe import HttpProbe, Outcome, Probe, TcpProbe
from bascule.upstream.target import Target

if TYPE_CHECKING:
    from bascule.config.health import Health

__all__ = ["HealthChecker", "HealthSettings", "Status", "Tally"]

log = logging.getLogger("bascule.health")


class Tally:
    """A target's check results in a row, and the status they add up to (rule 2)."""

    __slots__ = ("failed", "healthy", "passed", "status", "unhealthy")

    def __init__(self, healthy: int, unhealthy: int, initial: Status = Status.UNKNOWN) -> None:
        self.healthy = healthy
        self.unhealthy = unhealthy
        self.status = initial
        self.passed = 0  # passes in a row
        self.failed = 0  # failures in a row

    def record(self, passed: bool) -> bool:
        """Count one result; True if it changed the status."""
        if passed:
            self.passed += 1
            self.failed = 0
            if self.status is Status.UP:
                return False
            if self.status is Status.DOWN and self.passed < self.healthy:
                return False
            self.status = Status.UP
            return True
        self.failed += 1
        self.passed = 0
        if self.status is Status.DOWN:
            return False
        if self.status is Status.UP and self.failed < self.unhealthy:
            return False
        self.status = Status.DOWN
        return True

    def recheck(self) -> None:
        """Start over as down: the target must pass `healthy` checks in a row to be up."""
        self.status = Status.DOWN
        self.passed = self.failed = 0


@dataclass(frozen=True)
class HealthSettings:
    """What a `HealthChecker` needs, in engine units. Defaults match the config's."""

    probe: Probe
    interval: float = 5.0
    timeout: float = 2.0
    jitter: float = 0.1  # a share of the interval, 0-0.5
    healthy: int = 2
    unhealthy: int = 3
    initial: Status = Status.UNKNOWN

    @classmethod
    def from_config(cls, health: Health, load_header: bytes | None = None) -> HealthSettings:
        """From a validated `health:` block; `load_header` for least_load upstreams only."""
        probe: Probe
        if health.http is not None:
            http = health.http
            probe = HttpProbe(
                method=http.method,
                path=http.path,
                host=http.host,
                headers=http.headers,
                statuses=http.statuses,
                body=re.compile(http.expect_body) if http.expect_body is not None else None,
                load_header=load_header,
            )
        else:
            probe = TcpProbe()
        return cls(
            probe=probe,
            interval=health.interval,
            timeout=health.timeout,
            jitter=health.jitter / 100.0,
            healthy=health.healthy,
            unhealthy=health.unhealthy,
            initial=Status(health.initial),
        )


class _Watch:
    """One target under check: its tally, its task, the event that cuts a pause short, and
    what the board says of it."""

    __slots__ = (
        "checks",
        "key",
        "load",
        "load_at",
        "rechecks",
        "slot",
        "tally",
        "task",
        "up_since",
        "wake",
        "wakes",
    )

    def __init__(self, tally: Tally, key: int) -> None:
        self.tally = tally
        self.rechecks = 0  # a check begun before the last recheck does not count
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.key = key  # on the board
        self.slot: int | None = None  # None: no board, or it is full
        self.checks = 0  # results counted, for the board
        self.wakes = 0  # the board's count of checks asked for, as last seen
        self.up_since: float | None = None  # when it last came up from down
        self.load: float | None = None  # its last load report
        self.load_at: float | None = None  # and when it was made

    def entry(self) -> Entry:
        return Entry(
            self.tally.status,
            self.checks,
            self.tally.passed,
            self.up_since,
            self.load,
            self.load_at,
        )


class HealthChecker:
    """The active checks of one upstream's targets: one task per target (rule 4)."""

    def __init__(
        self,
        upstream: str,
        targets: Iterable[Target],
        settings: HealthSettings,
        *,
        rng: Callable[[], float] = random.random,
        board: HealthBoard | None = None,
    ) -> None:
        self.upstream = upstream
        self.settings = settings
        self._rng = rng
        self._board = board
        self._watches: dict[Target, _Watch] = {}
        self._retired: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self._running = False
        for target in targets:
            self._add(target)

    def status(self, target: Target) -> Status:
        return self._watches[target].tally.status

    def board_keys(self) -> set[int]:
        """The board keys of the targets under check."""
        return {watch.key for watch in self._watches.values()}

    def follow_board(self) -> None:
        """Check now each target a worker asked the board to check (after an ejection)."""
        if self._board is None:
            return
        for watch in self._watches.values():
            if watch.slot is not None:
                wakes = self._board.wakes(watch.slot)
                if wakes != watch.wakes:
                    watch.wakes = wakes
                    watch.wake.set()

    def start(self) -> None:
        """Start checking every target; the first checks run at once. Needs a running loop."""
        self._running = True
        s = self.settings
        log.info(
            "upstream %s: health checks (%s) of %d target(s) every %s, timeout %s",
            self.upstream,
            s.probe.label,
            len(self._watches),
            format_duration(s.interval),
            format_duration(s.timeout),
        )
        for target, watch in self._watches.items():
            self._launch(target, watch)

    def sync(self, targets: Iterable[Target]) -> None:
        """Follow a membership change: check new targets, stop checking removed ones."""
        wanted = list(targets)
        for target in set(self._watches) - set(wanted):
            watch = self._watches.pop(target)
            if self._board is not None and watch.slot is not None:
                self._board.retire(watch.slot, watch.key)
            task = watch.task
            if task is not None:
                task.cancel()
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)
        for target in wanted:
            if target not in self._watches:
                watch = self._add(target)
                if self._running:
                    self._launch(target, watch)

    def recheck(self, target: Target) -> None:
        """Take `target` out until it passes `healthy` checks in a row, starting with one now
        (outlier detection calls this when an ejection ends)."""
        watch = self._watches.get(target)
        if watch is None:
            return
        watch.tally.recheck()
        watch.rechecks += 1
        target.state.set_available(False, by="health")
        watch.wake.set()

    async def stop(self) -> None:
        """Cancel every check and wait for them to end: no task or socket is left behind."""
        self._running = False
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        tasks.extend(self._retired)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in self._watches.values():
            watch.task = None

    def _add(self, target: Target) -> _Watch:
        s = self.settings
        watch = _Watch(
            Tally(s.healthy, s.unhealthy, s.initial), slot_key(self.upstream, target.name)
        )
        if self._board is not None:
            self._claim(target, watch, self._board)
        if watch.tally.status is Status.DOWN:
            target.state.set_available(False, by="health")
        self._watches[target] = watch
        return watch

    def _claim(self, target: Target, watch: _Watch, board: HealthBoard) -> None:
        """Take the target's slot on the board, starting from what it says (rule 5)."""
        watch.slot = board.claim(watch.key)
        if watch.slot is None:
            log.error(
                "upstream %s: the health board is full; the checks of %s are not shared",
                self.upstream,
                target.name,
            )
            return
        found = board.read(watch.slot, watch.key)
        if found is not None and found.status is not Status.UNKNOWN:
            watch.tally.status = found.status
            watch.checks, watch.up_since = found.checks, found.up_since
            watch.load, watch.load_at = found.load, found.load_at
        watch.wakes = board.wakes(watch.slot)
        board.write(watch.slot, watch.key, watch.entry())

    def _launch(self, target: Target, watch: _Watch) -> None:
        watch.task = asyncio.get_running_loop().create_task(
            self._run(target, watch), name=f"health {self.upstream} {target.name}"
        )

    async def _run(self, target: Target, watch: _Watch) -> None:
        s = self.settings
        while True:
            watch.wake.clear()
            rechecks = watch.rechecks
            try:
                outcome = await s.probe.check(target, s.timeout)
            except Exception as exc:  # a bug must not end the checks of this target
                log.exception("health check of %s of upstream %s", target.name, self.upstream)
                outcome = Outcome(False, f"the check itself failed: {exc!r}")
            if watch.rechecks != rechecks:
                continue  # it began before the recheck: run a fresh one now
            self.record(target, outcome)
            pause = s.interval * (1.0 + s.jitter * (2.0 * self._rng() - 1.0))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await watch.wake.wait()

    def record(self, target: Target, outcome: Outcome) -> None:
        """Count one check's outcome against `target` and apply any transition (rules 1-3)."""
        watch = self._watches.get(target)
        if watch is None:
            return
        if outcome.load is not None:
            target.state.report_load(outcome.load)
            watch.load, watch.load_at = outcome.load, time.monotonic()
        tally = watch.tally
        was = tally.status
        changed = tally.record(outcome.passed)
        watch.checks += 1
        if changed and was is Status.DOWN:
            watch.up_since = time.monotonic()  # slow start, for the workers following the board
        if self._board is not None and watch.slot is not None:
            self._board.write(watch.slot, watch.key, watch.entry())
        if not changed:
            return
        up = tally.status is Status.UP
        target.state.set_available(up, by="health")
        if was is Status.UNKNOWN:
            streak = "first check"
        elif up:
            streak = _streak(tally.passed, "passing")
        else:
            streak = _streak(tally.failed, "failed")
        log.log(
            logging.INFO if up else logging.WARNING,
            "target %s of upstream %s is %s: %s (%s)",
            target.name,
            self.upstream,
            tally.status.value,
            outcome.reason,
            streak,
        )


def _streak(count: int, kind: str) -> str:
    return f"1 {kind} check" if count == 1 else f"{count} {kind} checks in a row"
