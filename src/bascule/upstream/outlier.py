"""Passive outlier detection: eject a target that fails the proxy's requests in a row.

Rules:

1. The proxy reports every request's outcome to its target (`TargetState.finish`); a
   connect failure, a timeout, a reset and a 5xx are failures. `consecutive_failures`
   failures in a row eject the target: it is held out of service as "outlier"
   (`set_available(False, by="outlier")`), whatever else holds it.
2. The nth ejection in a row lasts n times `base_ejection`, at most `max_ejection`. Each
   `base_ejection` a returned target then serves without being ejected again takes one
   off n, so a target that failed once long ago starts over at `base_ejection`.
3. A target is never ejected if that would leave more than `max_ejected_percent` of the
   upstream's targets ejected: past that point the failures are more likely the clients'
   or a shared dependency's, and ejecting more would only concentrate the load.
4. When its window ends the target returns; with active checks it goes back to them as
   down (`HealthChecker.recheck`) and takes traffic again once they pass. Failures counted
   while it was out are forgotten.
5. Ejections and returns are logged, and so is a target that stays in only because of
   rule 3 (once per streak of failures).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bascule.config.units import format_duration
from bascule.upstream.target import Target

if TYPE_CHECKING:
    from bascule.config.health import OutlierDetection

__all__ = ["OutlierDetector", "OutlierSettings"]

log = logging.getLogger("bascule.outlier")


class Handle(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Handle]
"""Run a callback after a delay in seconds, like `loop.call_later`."""


@dataclass(frozen=True)
class OutlierSettings:
    """What an `OutlierDetector` needs, in engine units. Defaults match the config's."""

    consecutive_failures: int = 5
    base_ejection: float = 30.0
    max_ejection: float = 300.0
    max_ejected_percent: int = 50

    @classmethod
    def from_config(cls, outlier: OutlierDetection) -> OutlierSettings:
        return cls(
            consecutive_failures=outlier.consecutive_failures,
            base_ejection=outlier.base_ejection,
            max_ejection=outlier.max_ejection,
            max_ejected_percent=outlier.max_ejected_percent,
        )


class _Record:
    __slots__ = ("ejections", "handle", "returned_at", "window")

    def __init__(self) -> None:
        self.ejections = 0  # in a row, as rule 2 counts them
        self.returned_at = -math.inf
        self.window = 0.0  # the current or last ejection's length
        self.handle: Handle | None = None  # the pending return while ejected


class OutlierDetector:
    """Outlier detection over one upstream's targets.

    `recheck(target)` is called as an ejection ends, before the target returns: the health
    checker's, when the upstream has active checks. `clock` and `call_later` default to
    the running loop's; tests give their own.
    """

    def __init__(
        self,
        upstream: str,
        targets: Iterable[Target],
        settings: OutlierSettings,
        *,
        recheck: Callable[[Target], None] | None = None,
        on_eject: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
    ) -> None:
        self.upstream = upstream
        self.settings = settings
        self._recheck = recheck
        self._on_eject = on_eject  # told the upstream's name at each ejection (metrics)
        self._clock = clock
        self._call_later = call_later
        self._records: dict[Target, _Record] = {}
        self._ejected = 0
        self._listening = False
        self._pending = list(targets)

    @property
    def ejected(self) -> list[Target]:
        return [t for t, r in self._records.items() if r.handle is not None]

    def start(self) -> None:
        """Listen to the targets' failures (needs a running loop unless `call_later` was given)."""
        if self._call_later is None:
            self._call_later = asyncio.get_running_loop().call_later
        self._listening = True
        self.sync(self._pending)

    def sync(self, targets: Iterable[Target]) -> None:
        """Follow a membership change: watch new targets, forget removed ones."""
        wanted = list(targets)
        if not self._listening:
            self._pending = wanted
            return
        for target in set(self._records) - set(wanted):
            self._forget(target)
        for target in wanted:
            if target not in self._records:
                self._records[target] = _Record()
                target.state.on_failure(functools.partial(self._failed, target))

    def stop(self) -> None:
        """Stop listening and cancel pending returns (on shutdown: targets stay as they are)."""
        for target in list(self._records):
            self._forget(target)
        self._listening = False

    def _forget(self, target: Target) -> None:
        record = self._records.pop(target)
        target.state.on_failure(None)
        if record.handle is not None:
            record.handle.cancel()
            self._ejected -= 1

    def _failed(self, target: Target, failures: int) -> None:
        s = self.settings
        if failures < s.consecutive_failures:
            return
        record = self._records.get(target)
        if record is None or record.handle is not None:
            return  # already out: requests still in flight when it was ejected
        allowed = len(self._records) * s.max_ejected_percent // 100
        if self._ejected >= allowed:
            if failures == s.consecutive_failures:
                log.warning(
                    "target %s of upstream %s failed %d requests in a row but stays in: "
                    "%d of %d targets are ejected already, the most max_ejected_percent %d "
                    "allows",
                    target.name,
                    self.upstream,
                    failures,
                    self._ejected,
                    len(self._records),
                    s.max_ejected_percent,
                )
            return
        self._eject(target, record, failures)

    def _eject(self, target: Target, record: _Record, failures: int) -> None:
        s = self.settings
        now = self._clock()
        served = now - record.returned_at
        forgiven = int(served // s.base_ejection) if math.isfinite(served) else record.ejections
        record.ejections = max(record.ejections - forgiven, 0) + 1
        record.window = min(s.base_ejection * record.ejections, s.max_ejection)
        assert self._call_later is not None
        record.handle = self._call_later(record.window, lambda: self._return(target))
        self._ejected += 1
        target.state.set_available(False, by="outlier")
        if self._on_eject is not None:
            self._on_eject(self.upstream)
        log.warning(
            "target %s of upstream %s ejected for %s: %d failed requests in a row "
            "(ejection %d in a row)",
            target.name,
            self.upstream,
            format_duration(record.window),
            failures,
            record.ejections,
        )

    def _return(self, target: Target) -> None:
        record = self._records.get(target)
        if record is None or record.handle is None:
            return
        record.handle = None
        record.returned_at = self._clock()
        self._ejected -= 1
        target.state.failures = 0
        if self._recheck is not None:
            self._recheck(target)  # before the hold ends, so it never takes traffic unchecked
        target.state.set_available(True, by="outlier")
        log.info(
            "target %s of upstream %s: its %s ejection is over; %s",
            target.name,
            self.upstream,
            format_duration(record.window),
            "it returns once its health checks pass"
            if self._recheck is not None
            else "it takes traffic again",
        )
