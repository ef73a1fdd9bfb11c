"""Active health checks as pure logic: the unknown/up/down tally, the checker applying
outcomes to targets, and the holders that let health, outlier detection and draining take
a target out without undoing each other."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from bascule.balancing import TargetState
from bascule.upstream.health import HealthChecker, HealthSettings, Status, Tally
from bascule.upstream.probe import HttpProbe, Outcome, TcpProbe
from bascule.upstream.target import Target

# -- the tally -----------------------------------------------------------------------------


def run(tally: Tally, results: str) -> list[Status]:
    """Feed results written as "+" (pass) and "-" (fail); the status after each."""
    statuses = []
    for result in results:
        tally.record(result == "+")
        statuses.append(tally.status)
    return statuses


UP, DOWN, UNKNOWN = Status.UP, Status.DOWN, Status.UNKNOWN


def test_from_unknown_the_first_result_decides_either_way() -> None:
    assert run(Tally(2, 3), "+") == [UP]
    assert run(Tally(2, 3), "-") == [DOWN]


def test_up_goes_down_after_unhealthy_failures_in_a_row() -> None:
    assert run(Tally(2, 3, UP), "--+--+---") == [UP] * 6 + [UP, UP, DOWN]


def test_down_comes_up_after_healthy_passes_in_a_row() -> None:
    assert run(Tally(2, 3, DOWN), "+-+-++") == [DOWN] * 5 + [UP]


def test_record_says_when_the_status_changed() -> None:
    tally = Tally(1, 2, UP)
    assert [tally.record(r) for r in (False, False, False, True, True)] == [
        False,
        True,
        False,
        True,
        False,
    ]


def test_thresholds_of_one_follow_every_result() -> None:
    assert run(Tally(1, 1, UP), "-+-+") == [DOWN, UP, DOWN, UP]


def test_recheck_starts_over_as_down() -> None:
    tally = Tally(3, 3, UP)
    run(tally, "++")
    tally.recheck()
    assert run(tally, "++-+++") == [DOWN] * 5 + [UP]


# -- TargetState holders and failure counts -----------------------------------------------


def test_a_target_is_available_only_while_nobody_holds_it() -> None:
    state = TargetState()
    state.set_available(False, by="health")
    state.set_available(False, by="outlier")
    assert not state.available
    assert state.held_by == ("health", "outlier")
    state.set_available(True, by="health")  # health is fine again; still ejected
    assert not state.available
    assert state.held_by == ("outlier",)
    state.set_available(True, by="outlier")
    assert state.available
    assert state.held_by == ()


def test_a_health_check_never_ends_a_drain() -> None:
    state = TargetState()
    state.set_available(False, by="draining")
    state.set_available(True, by="health")
    assert not state.available


def test_set_available_without_holder_keeps_its_old_meaning() -> None:
    state = TargetState()
    state.set_available(False)
    assert (state.available, state.held_by) == (False, ("operator",))
    state.set_available(True)
    assert state.available


def test_slow_start_begins_when_the_last_hold_ends() -> None:
    now = [100.0]
    state = TargetState(clock=lambda: now[0])
    state.set_available(False, by="health")
    state.set_available(False, by="outlier")
    now[0] = 110.0
    state.set_available(True, by="outlier")
    assert state.up_since is None
    now[0] = 120.0
    state.set_available(True, by="health")
    assert state.up_since == 120.0


def test_failures_count_in_a_row_and_a_success_resets_them() -> None:
    state = TargetState()
    heard: list[int] = []
    state.on_failure(heard.append)
    for ok in (False, False, True, False):
        state.start()
        state.finish(0.01, ok)
    assert heard == [1, 2, 1]
    assert state.failures == 1
    state.on_failure(None)
    state.finish(0.01, False)
    assert heard == [1, 2, 1]
    assert state.failures == 2


def test_the_failure_listener_does_not_take_the_balancers_watch_slot() -> None:
    state = TargetState()
    watched: list[bool] = []
    failed: list[int] = []
    state.watch(lambda: watched.append(True))
    state.on_failure(failed.append)
    state.finish(0.01, False)
    assert watched == [True]
    assert failed == [1]


# -- the checker applying outcomes ----------------------------------------------------------


def targets(count: int) -> list[Target]:
    return [Target("127.0.0.1", 9000 + i) for i in range(count)]


def checker(
    *pool: Target, healthy: int = 2, unhealthy: int = 3, initial: Status = UNKNOWN
) -> HealthChecker:
    settings = HealthSettings(TcpProbe(), healthy=healthy, unhealthy=unhealthy, initial=initial)
    return HealthChecker("web", pool, settings)


PASS = Outcome(True, "GET /healthz → 200")
FAIL = Outcome(False, "GET /healthz → 503")


def test_an_unknown_target_takes_traffic_until_its_first_check_fails() -> None:
    (target,) = targets(1)
    c = checker(target)
    assert target.state.available
    assert c.status(target) is UNKNOWN
    c.record(target, FAIL)
    assert not target.state.available
    assert c.status(target) is DOWN
    c.record(target, PASS)
    assert not target.state.available
    c.record(target, PASS)
    assert target.state.available
    assert c.status(target) is UP


def test_initial_down_takes_no_traffic_until_healthy_checks_pass() -> None:
    (target,) = targets(1)
    c = checker(target, initial=DOWN)
    assert not target.state.available
    assert target.state.held_by == ("health",)
    c.record(target, PASS)
    assert not target.state.available
    c.record(target, PASS)
    assert target.state.available


def test_initial_up_needs_unhealthy_failures_to_go_down() -> None:
    (target,) = targets(1)
    c = checker(target, initial=UP)
    c.record(target, FAIL)
    c.record(target, FAIL)
    assert target.state.available
    c.record(target, FAIL)
    assert not target.state.available


def test_every_transition_is_logged_once_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    (target,) = targets(1)
    c = checker(target, initial=UP)
    caplog.set_level(logging.INFO, logger="bascule.health")
    for outcome in (FAIL, FAIL, FAIL, FAIL, FAIL, PASS, PASS, PASS):
        c.record(target, outcome)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "target 127.0.0.1:9000 of upstream web is down: GET /healthz → 503 "
            "(3 failed checks in a row)",
        ),
        (
            "INFO",
            "target 127.0.0.1:9000 of upstream web is up: GET /healthz → 200 "
            "(2 passing checks in a row)",
        ),
    ]


def test_the_first_check_of_an_unknown_target_is_logged_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (target,) = targets(1)
    caplog.set_level(logging.INFO, logger="bascule.health")
    checker(target).record(target, Outcome(False, "connect refused"))
    assert caplog.messages == [
        "target 127.0.0.1:9000 of upstream web is down: connect refused (first check)"
    ]


def test_recheck_takes_a_target_out_until_it_passes_again() -> None:
    (target,) = targets(1)
    c = checker(target, initial=UP)
    c.recheck(target)
    assert not target.state.available
    assert c.status(target) is DOWN
    c.record(target, PASS)
    c.record(target, PASS)
    assert target.state.available


def test_a_check_reporting_load_feeds_the_target_state() -> None:
    (target,) = targets(1)
    checker(target).record(target, Outcome(True, "GET /load → 200", load=42.0))
    assert target.state.load == 42.0


def test_settings_from_config_build_the_probe() -> None:
    from bascule.config.health import Health

    health = Health.model_validate(
        {
            "http": {"path": "/ready", "expect_status": "2xx", "expect_body": "ok"},
            "jitter": "20%",
            "initial": "down",
        }
    )
    settings = HealthSettings.from_config(health, b"x-server-load")
    assert isinstance(settings.probe, HttpProbe)
    assert settings.probe.statuses == ((200, 299),)
    assert settings.probe.body == re.compile("ok")
    assert settings.probe.load_header == b"x-server-load"
    assert (settings.jitter, settings.initial) == (0.2, DOWN)
    tcp = HealthSettings.from_config(Health.model_validate({"tcp": {}}))
    assert isinstance(tcp.probe, TcpProbe)


# -- the checker's tasks ---------------------------------------------------------------------


class ScriptedProbe:
    """A probe whose outcomes the test decides per target, counting the checks it ran."""

    label = "scripted"

    def __init__(self, passing: bool = True) -> None:
        self.passing = passing
        self.checks: dict[Target, int] = {}

    async def check(self, target: Target, within: float) -> Outcome:
        self.checks[target] = self.checks.get(target, 0) + 1
        await asyncio.sleep(0)
        return PASS if self.passing else FAIL


def test_checks_run_on_their_interval_and_stop_leaves_no_task() -> None:
    probe = ScriptedProbe()
    pool = targets(2)

    async def main() -> None:
        c = HealthChecker("web", pool, HealthSettings(probe, interval=0.01, jitter=0.0))
        c.start()
        await asyncio.sleep(0.1)
        await c.stop()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())
    assert all(3 <= probe.checks[t] <= 12 for t in pool), probe.checks


def test_sync_checks_new_targets_and_stops_checking_removed_ones() -> None:
    probe = ScriptedProbe(passing=False)
    first, second = targets(2)

    async def main() -> None:
        c = HealthChecker("web", [first], HealthSettings(probe, interval=0.01, jitter=0.0))
        c.start()
        await asyncio.sleep(0.03)
        c.sync([second])
        before = probe.checks[first]
        await asyncio.sleep(0.05)
        assert probe.checks[first] == before
        assert not second.state.available
        await c.stop()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


def test_recheck_runs_a_check_at_once_instead_of_waiting_the_interval() -> None:
    probe = ScriptedProbe()
    (target,) = targets(1)

    async def main() -> None:
        c = HealthChecker(
            "web", [target], HealthSettings(probe, interval=60.0, jitter=0.0, healthy=1)
        )
        c.start()
        await asyncio.sleep(0.01)
        assert probe.checks[target] == 1
        c.recheck(target)
        await asyncio.sleep(0.01)
        assert probe.checks[target] == 2
        assert target.state.available
        await c.stop()

    asyncio.run(main())


class GatedProbe:
    """Passes every check; the first waits until the test opens the gate."""

    label = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.checks = 0

    async def check(self, target: Target, within: float) -> Outcome:
        self.checks += 1
        if self.checks == 1:
            await self.gate.wait()
        return PASS


def test_a_check_begun_before_a_recheck_does_not_count() -> None:
    probe = GatedProbe()
    (target,) = targets(1)

    async def main() -> None:
        settings = HealthSettings(probe, interval=60.0, jitter=0.0, healthy=2)
        c = HealthChecker("web", [target], settings)
        c.start()
        await asyncio.sleep(0.01)  # the first check is under way
        c.recheck(target)
        probe.gate.set()
        await asyncio.sleep(0.01)
        assert probe.checks == 2  # the stale pass was dropped and a fresh check ran
        assert c.status(target) is DOWN
        assert not target.state.available
        await c.stop()

    asyncio.run(main())
