"""Passive outlier detection with a clock and timers the test moves: who is ejected, for how
long, who is kept in for capacity, and how a target returns."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bascule.balancing import TargetState
from bascule.config.health import OutlierDetection
from bascule.upstream.outlier import OutlierDetector, OutlierSettings
from bascule.upstream.target import Target


class Timers:
    """A clock and `call_later` that move only when the test calls `advance`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._due: list[tuple[float, int, Callable[[], None], Timer]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer()
        self._seq += 1
        self._due.append((self.now + delay, self._seq, callback, timer))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            ready = sorted(d for d in self._due if d[0] <= end and not d[3].cancelled)
            if not ready:
                break
            when, _, callback, _timer = ready[0]
            self._due.remove(ready[0])
            self.now = when
            callback()
        self.now = end

    @property
    def pending(self) -> int:
        return sum(not d[3].cancelled for d in self._due)


class Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def setup(
    count: int = 4,
    *,
    failures: int = 3,
    base: float = 10.0,
    most: float = 100.0,
    percent: int = 50,
    recheck: Callable[[Target], None] | None = None,
) -> tuple[OutlierDetector, list[Target], Timers]:
    timers = Timers()
    pool = [Target("127.0.0.1", 9000 + i, state=TargetState(clock=timers)) for i in range(count)]
    settings = OutlierSettings(failures, base, most, percent)
    detector = OutlierDetector(
        "web", pool, settings, recheck=recheck, clock=timers, call_later=timers.call_later
    )
    detector.start()
    return detector, pool, timers


def fail(target: Target, times: int = 1) -> None:
    for _ in range(times):
        target.state.start()
        target.state.finish(0.01, ok=False)


def succeed(target: Target) -> None:
    target.state.start()
    target.state.finish(0.01, ok=True)


def test_consecutive_failures_eject_a_target() -> None:
    detector, (target, *_), _ = setup(failures=3)
    fail(target, 2)
    assert target.state.available
    fail(target)
    assert not target.state.available
    assert target.state.held_by == ("outlier",)
    assert detector.ejected == [target]


def test_a_success_between_failures_starts_the_count_over() -> None:
    _, (target, *_), _ = setup(failures=3)
    fail(target, 2)
    succeed(target)
    fail(target, 2)
    assert target.state.available


def test_an_ejected_target_returns_after_its_window() -> None:
    _, (target, *_), timers = setup(base=10.0)
    fail(target, 3)
    timers.advance(9.9)
    assert not target.state.available
    timers.advance(0.1)
    assert target.state.available
    assert target.state.failures == 0  # what failed while it was out is forgotten


def test_each_ejection_in_a_row_lasts_longer_up_to_the_cap() -> None:
    _, (target, *_), timers = setup(base=10.0, most=25.0)
    windows = []
    for _ in range(4):
        fail(target, 3)
        start = timers.now
        while not target.state.available:
            timers.advance(1.0)
        windows.append(timers.now - start)
    assert windows == [10.0, 20.0, 25.0, 25.0]


def test_time_served_without_ejection_shortens_the_next_one() -> None:
    _, (target, *_), timers = setup(base=10.0, most=100.0)
    for window in (10.0, 20.0, 30.0):  # failing again as soon as it returns
        fail(target, 3)
        timers.advance(window)
        assert target.state.available
    timers.advance(20.0)  # two base_ejection periods served: 3 - 2 = 1, so the next is 2nd
    fail(target, 3)
    timers.advance(19.9)
    assert not target.state.available
    timers.advance(0.1)
    assert target.state.available


def test_max_ejected_percent_keeps_capacity(caplog: pytest.LogCaptureFixture) -> None:
    detector, pool, timers = setup(4, percent=50)
    caplog.set_level(logging.WARNING, logger="bascule.outlier")
    for target in pool:
        fail(target, 5)  # past the threshold: still only logged once per streak
    assert [t.state.available for t in pool] == [False, False, True, True]
    assert len(detector.ejected) == 2
    stays = [m for m in caplog.messages if "stays in" in m]
    assert stays == [
        "target 127.0.0.1:9002 of upstream web failed 3 requests in a row but stays in: "
        "2 of 4 targets are ejected already, the most max_ejected_percent 50 allows",
        "target 127.0.0.1:9003 of upstream web failed 3 requests in a row but stays in: "
        "2 of 4 targets are ejected already, the most max_ejected_percent 50 allows",
    ]
    timers.advance(10.0)  # the first two return: a failing one is ejected at its next failure
    fail(pool[2])
    assert not pool[2].state.available


def test_a_lone_target_is_never_ejected_below_100_percent() -> None:
    _, (target,), _ = setup(1, percent=99)
    fail(target, 10)
    assert target.state.available
    _, (target,), _ = setup(1, percent=100)
    fail(target, 3)
    assert not target.state.available


def test_with_active_checks_a_returning_target_is_handed_to_them_first() -> None:
    seen: list[tuple[bool, tuple[str, ...]]] = []

    def recheck(target: Target) -> None:
        target.state.set_available(False, by="health")
        seen.append((target.state.available, target.state.held_by))

    _, (target, *_), timers = setup(recheck=recheck)
    fail(target, 3)
    timers.advance(10.0)
    assert seen == [(False, ("health", "outlier"))]  # called while still ejected
    assert not target.state.available
    assert target.state.held_by == ("health",)


def test_ejections_and_returns_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bascule.outlier")
    _, (target, *_), timers = setup()
    fail(target, 3)
    timers.advance(10.0)
    assert caplog.messages == [
        "target 127.0.0.1:9000 of upstream web ejected for 10s: 3 failed requests in a row "
        "(ejection 1 in a row)",
        "target 127.0.0.1:9000 of upstream web: its 10s ejection is over; it takes traffic again",
    ]


def test_failures_of_requests_in_flight_at_ejection_change_nothing() -> None:
    detector, (target, *_), timers = setup()
    fail(target, 3)
    fail(target, 5)
    assert timers.pending == 1
    assert detector.ejected == [target]


def test_stop_cancels_returns_and_stops_listening() -> None:
    detector, (target, other, *_), timers = setup()
    fail(target, 3)
    detector.stop()
    assert timers.pending == 0
    fail(other, 3)
    assert other.state.available


def test_sync_follows_membership() -> None:
    detector, pool, timers = setup(2, percent=50)
    newcomer = Target("127.0.0.1", 9100, state=TargetState(clock=timers))
    fail(pool[0], 3)
    detector.sync([pool[1], newcomer])  # the ejected target is gone: its return is cancelled
    assert timers.pending == 0
    fail(pool[0], 3)  # no longer watched
    fail(newcomer, 3)
    assert detector.ejected == [newcomer]


def test_settings_from_config() -> None:
    settings = OutlierSettings.from_config(
        OutlierDetection(consecutive_failures=2, base_ejection=1.0, max_ejection=4.0)
    )
    assert settings == OutlierSettings(2, 1.0, 4.0, 50)
