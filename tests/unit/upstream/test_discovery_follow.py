"""Following DNS with a scripted lookup: when names are looked up again, what a failure
keeps, what is logged, and what the upstream's balancer sees after a change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bascule.balancing import BalancerSettings, PickContext, TargetState
from bascule.upstream import discovery as discovery_module
from bascule.upstream.connection_pool import ConnectionPool
from bascule.upstream.discovery import (
    RETRY_AFTER_FAILURE,
    TTL_CEILING,
    TTL_FLOOR,
    DiscoveredTarget,
    Discovery,
    DnsFailure,
    Endpoint,
    HostName,
    Membership,
    ServiceName,
    ServiceRecord,
    Source,
)
from bascule.upstream.target import Target
from bascule.upstream.upstream import Upstream


class FakeLookup:
    """Answers from dicts the test edits; an exception as a value is raised."""

    def __init__(self) -> None:
        self.hosts: dict[str, tuple[list[str], float] | Exception] = {}
        self.services_of: dict[str, tuple[list[ServiceRecord], float] | Exception] = {}
        self.asked: list[str] = []
        self.closed = False

    async def addresses(self, hostname: str) -> tuple[list[str], float]:
        self.asked.append(hostname)
        answer = self.hosts.get(hostname, ([], 0.0))
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def services(self, name: str) -> tuple[list[ServiceRecord], float]:
        self.asked.append(name)
        answer = self.services_of.get(name, ([], 0.0))
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        self.closed = True


class IdleConnection:
    """A keep-alive connection waiting in a target's pool; records being closed."""

    def __init__(self) -> None:
        self.closed = False

    @property
    def usable(self) -> bool:
        return not self.closed

    def park(self, pool: ConnectionPool) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def give_pool(target: Target) -> None:
    """The target's pool, with one idle connection in it."""
    pool = ConnectionPool(
        target, asyncio.Protocol, max_idle=4, idle_timeout=60.0, connect_timeout=1.0
    )
    pool.put_back(IdleConnection())
    target.pool = pool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


def make_target(endpoint: Endpoint, up_since: float | None) -> Target:
    assert endpoint.hostname is not None
    target = DiscoveredTarget(
        endpoint.ip,
        endpoint.port,
        endpoint.weight,
        hostname=endpoint.hostname,
        state=TargetState(up_since=up_since),
    )
    give_pool(target)
    return target


def upstream(*targets: Target, sticky: bool = False) -> Upstream:
    for target in targets:
        give_pool(target)
    return Upstream(
        "app",
        targets,
        BalancerSettings(),
        connect_timeout=1.0,
        read_timeout=1.0,
        send_timeout=1.0,
        sticky=sticky,
    )


def follow(
    up: Upstream,
    entries: list[Endpoint | Source],
    lookup: FakeLookup,
    *,
    every: float | None = None,
    clock: Clock | None = None,
) -> tuple[Discovery, Membership]:
    discovery = Discovery(clock=clock or Clock())
    member = discovery.add(up, entries, make_target, lookup, resolve_every=every)
    return discovery, member


def names(up: Upstream) -> list[str]:
    return [t.name for t in up.targets]


def picks(up: Upstream, count: int) -> set[str]:
    chosen = (up.pick(PickContext()) for _ in range(count))
    return {t.name for t in chosen if t is not None}


APP = HostName("app.test", 8080, 1, 0)


# -- startup -------------------------------------------------------------------------------


def test_a_hostname_becomes_one_target_per_address_without_slow_start() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.2", "10.0.0.1"], 30.0)
    up = upstream()

    async def main() -> None:
        discovery, _ = follow(up, [APP], lookup)
        await discovery.start()
        await discovery.stop()

    run(main)

    assert names(up) == ["10.0.0.1:8080", "10.0.0.2:8080"]
    assert all(isinstance(t, DiscoveredTarget) and t.hostname == "app.test" for t in up.targets)
    assert all(t.state.up_since is None for t in up.targets)
    assert up.targets[0].address == b"app.test:8080"  # the Host header keeps the name
    assert picks(up, 4) == {"10.0.0.1:8080", "10.0.0.2:8080"}


def test_ip_targets_keep_their_place_among_found_ones() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.5"], 30.0)
    static = Target("10.0.0.9", 80)
    up = upstream(static)
    entries: list[Endpoint | Source] = [APP, Endpoint("10.0.0.9", 80, 1, 1)]

    async def main() -> None:
        discovery, _ = follow(up, entries, lookup)
        await discovery.start()
        await discovery.stop()

    run(main)

    assert names(up) == ["10.0.0.5:8080", "10.0.0.9:80"]
    assert up.targets[1] is static


def test_a_name_that_fails_at_startup_gives_no_target_and_is_logged_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = DnsFailure("A app.test: timed out")
    up = upstream()

    async def main() -> Membership:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        await discovery.stop()
        return member

    with caplog.at_level(logging.INFO, logger="bascule"):
        member = run(main)

    assert up.targets == ()
    assert up.pick(PickContext()) is None  # the proxy answers 503
    assert member.entries[0].wait == RETRY_AFTER_FAILURE
    (record,) = [r for r in caplog.records if "app.test" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "A app.test: timed out" in record.getMessage()
    assert "503" in record.getMessage()


# -- when to look again --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "wait"),
    [(0.0, TTL_FLOOR), (0.2, TTL_FLOOR), (30.0, 30.0), (86400.0, TTL_CEILING)],
)
def test_a_name_is_looked_up_again_when_its_ttl_runs_out_within_bounds(
    ttl: float, wait: float
) -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], ttl)
    up = upstream()

    async def main() -> float:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        await discovery.stop()
        return member.entries[0].wait

    assert run(main) == wait


def test_resolve_every_overrides_the_ttl_and_bounds_the_retry_after_a_failure() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 300.0)
    up = upstream()

    async def main() -> tuple[float, float, float]:
        discovery, member = follow(up, [APP], lookup, every=0.2)
        await discovery.start()
        await discovery.stop()
        entry = member.entries[0]
        after_success = entry.wait
        lookup.hosts["app.test"] = DnsFailure("SERVFAIL")
        await member.refresh(entry)
        quick_failure = entry.wait
        _slow, slow_member = follow(up, [APP], lookup, every=600.0)
        await slow_member.refresh(slow_member.entries[0])
        return after_success, quick_failure, slow_member.entries[0].wait

    assert run(main) == (0.2, 0.2, RETRY_AFTER_FAILURE)


def test_the_loop_looks_names_up_again_on_schedule() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 0.0)
    up = upstream()

    async def main() -> None:
        discovery, _ = follow(up, [APP], lookup, every=0.01)
        await discovery.start()
        lookup.hosts["app.test"] = (["10.0.0.2"], 0.0)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if names(up) == ["10.0.0.2:8080"]:
                break
        await discovery.stop()

    run(main)

    assert names(up) == ["10.0.0.2:8080"]
    assert len(lookup.asked) >= 2


# -- changes -------------------------------------------------------------------------------


def test_a_change_rebuilds_the_balancer_keeps_state_and_ramps_new_targets() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1", "10.0.0.2"], 30.0)
    up = upstream()
    clock = Clock()

    async def main() -> None:
        discovery, member = follow(up, [APP], lookup, clock=clock)
        await discovery.start()
        kept, gone = up.targets
        kept.state.start()
        old_balancer = up.balancer
        clock.now = 200.0
        lookup.hosts["app.test"] = (["10.0.0.1", "10.0.0.3"], 30.0)
        assert await member.refresh(member.entries[0])
        change = member.apply()
        await discovery.stop()

        assert up.targets[0] is kept
        assert kept.state.in_flight == 1
        assert change.removed == (gone,)
        (added,) = change.added
        assert added.state.up_since == 200.0  # slow start from now
        assert up.balancer is not old_balancer
        assert up.pick.__self__ is up.balancer  # type: ignore[attr-defined]
        assert picks(up, 10) == {"10.0.0.1:8080", "10.0.0.3:8080"}
        # The removed target: drained, its idle connections closed, in-flight untouched.
        assert not gone.state.available
        assert gone.pool.take_idle() is None
        late = IdleConnection()
        gone.pool.put_back(late)  # a closed pool keeps nothing more
        assert late.closed

    run(main)


def test_an_unchanged_answer_does_not_rebuild_the_balancer() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1", "10.0.0.2"], 30.0)
    up = upstream()

    async def main() -> None:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        balancer = up.balancer
        lookup.hosts["app.test"] = (["10.0.0.2", "10.0.0.1"], 30.0)  # DNS round robin
        assert not await member.refresh(member.entries[0])
        assert not member.apply()
        await discovery.stop()
        assert up.balancer is balancer

    run(main)


def test_a_sticky_upstream_keeps_its_bound_pick_after_a_change() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 30.0)
    up = upstream(sticky=True)

    async def main() -> None:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        (old,) = up.targets
        lookup.hosts["app.test"] = (["10.0.0.2"], 30.0)
        await member.refresh(member.entries[0])
        member.apply()
        await discovery.stop()
        (new,) = up.targets
        # A session bound to the removed target is balanced as usual.
        assert up.pick(PickContext(override=old)) is new
        assert up.pick(PickContext(override=new)) is new

    run(main)


def test_watchers_hear_what_was_added_and_removed() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 30.0)
    up = upstream()
    heard: list[tuple[list[str], list[str]]] = []
    up.watch_targets(
        lambda added, removed: heard.append(([t.name for t in added], [t.name for t in removed]))
    )

    async def main() -> None:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        lookup.hosts["app.test"] = (["10.0.0.2"], 30.0)
        await member.refresh(member.entries[0])
        member.apply()
        await discovery.stop()

    run(main)

    assert heard == [(["10.0.0.1:8080"], []), (["10.0.0.2:8080"], ["10.0.0.1:8080"])]


# -- failures ------------------------------------------------------------------------------


def test_a_failing_name_keeps_its_last_good_targets_and_logs_once_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 30.0)
    up = upstream()

    async def main() -> None:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        entry = member.entries[0]
        caplog.clear()
        for failure in ("SERVFAIL", "timed out", "no A or AAAA record"):
            lookup.hosts["app.test"] = DnsFailure(failure)
            assert not await member.refresh(entry)
            member.apply()
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert "SERVFAIL" in warnings[0].getMessage()
        assert "keeping its last known targets (10.0.0.1:8080)" in warnings[0].getMessage()
        assert names(up) == ["10.0.0.1:8080"]

        lookup.hosts["app.test"] = (["10.0.0.1"], 30.0)
        await member.refresh(entry)
        assert any(
            "DNS answers again, after 3 failed lookup(s)" in r.getMessage() for r in caplog.records
        )
        lookup.hosts["app.test"] = DnsFailure("SERVFAIL again")
        await member.refresh(entry)
        await discovery.stop()
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 2  # a new streak is logged again

    with caplog.at_level(logging.INFO, logger="bascule"):
        run(main)


def test_an_empty_answer_counts_as_a_failure_and_changes_nothing() -> None:
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 30.0)
    up = upstream()

    async def main() -> None:
        discovery, member = follow(up, [APP], lookup)
        await discovery.start()
        lookup.hosts["app.test"] = ([], 0.0)  # NXDOMAIN, or no A/AAAA record
        assert not await member.refresh(member.entries[0])
        assert member.entries[0].failures == 1
        await discovery.stop()

    run(main)

    assert names(up) == ["10.0.0.1:8080"]


def test_an_unexpected_error_in_the_loop_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery_module, "RETRY_AFTER_FAILURE", 0.01)  # keep it short
    lookup = FakeLookup()
    lookup.hosts["app.test"] = (["10.0.0.1"], 0.0)
    up = upstream()

    async def main() -> None:
        discovery, _ = follow(up, [APP], lookup, every=0.01)
        await discovery.start()
        lookup.hosts["app.test"] = RuntimeError("bug")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if caplog.records:
                break
        lookup.hosts["app.test"] = (["10.0.0.2"], 0.0)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if names(up) == ["10.0.0.2:8080"]:
                break
        await discovery.stop()
        assert names(up) == ["10.0.0.2:8080"]  # the loop went on after the bug

    with caplog.at_level(logging.ERROR, logger="bascule"):
        run(main)

    assert any("discovery failed unexpectedly" in r.getMessage() for r in caplog.records)


# -- SRV -----------------------------------------------------------------------------------


def test_srv_gives_ports_weights_and_backups_from_priorities() -> None:
    lookup = FakeLookup()
    lookup.services_of["_http._tcp.app.test"] = (
        [
            ServiceRecord("a.app.test", 8081, 30, 10),
            ServiceRecord("b.app.test", 8082, 0, 10),
            ServiceRecord("c.app.test", 8083, 50, 20),  # a stand-by: a backup target
            ServiceRecord("d.app.test", 8084, 5, 30),  # a third level: a backup too
            ServiceRecord("gone.app.test", 8085, 10, 10),  # no address: skipped
        ],
        120.0,
    )
    lookup.hosts["a.app.test"] = (["10.0.0.1"], 40.0)
    lookup.hosts["b.app.test"] = (["10.0.0.2", "10.0.0.3"], 90.0)
    lookup.hosts["c.app.test"] = (["10.0.0.8"], 90.0)
    lookup.hosts["d.app.test"] = (["10.0.0.9"], 90.0)

    async def main() -> tuple[tuple[Endpoint, ...], float]:
        return await ServiceName("_http._tcp.app.test", 0).resolve(lookup)

    endpoints, ttl = run(main)

    assert [(e.name, e.weight, e.hostname, e.backup) for e in endpoints] == [
        ("10.0.0.1:8081", 30, "a.app.test", False),
        ("10.0.0.2:8082", 1, "b.app.test", False),  # weight 0 counts as 1
        ("10.0.0.3:8082", 1, "b.app.test", False),
        ("10.0.0.8:8083", 50, "c.app.test", True),
        ("10.0.0.9:8084", 5, "d.app.test", True),
    ]
    assert ttl == 40.0  # the shortest TTL of every record used


def test_a_backup_srv_target_makes_every_record_a_backup() -> None:
    lookup = FakeLookup()
    lookup.services_of["_http._tcp.app.test"] = ([ServiceRecord("a.app.test", 80, 1, 0)], 5.0)
    lookup.hosts["a.app.test"] = (["10.0.0.1"], 5.0)

    async def main() -> tuple[tuple[Endpoint, ...], float]:
        return await ServiceName("_http._tcp.app.test", 0, backup=True).resolve(lookup)

    (endpoint,), _ = run(main)

    assert endpoint.backup


def test_srv_without_records_or_addresses_fails_and_a_host_failure_fails_it_all() -> None:
    lookup = FakeLookup()
    srv = ServiceName("_http._tcp.app.test", 0)

    async def resolve() -> object:
        try:
            return await srv.resolve(lookup)
        except DnsFailure as failure:
            return str(failure)

    assert run(resolve) == "_http._tcp.app.test has no SRV record"
    lookup.services_of[srv.name] = ([ServiceRecord("a.app.test", 80, 1, 0)], 5.0)
    assert run(resolve) == "no host that _http._tcp.app.test lists has an A or AAAA record"
    lookup.hosts["a.app.test"] = DnsFailure("A a.app.test: SERVFAIL")
    assert run(resolve) == "A a.app.test: SERVFAIL"


def test_srv_weights_and_priorities_reach_kept_targets() -> None:
    lookup = FakeLookup()
    srv = ServiceName("_http._tcp.app.test", 0)
    lookup.services_of[srv.name] = (
        [ServiceRecord("a.app.test", 80, 1, 0), ServiceRecord("b.app.test", 80, 1, 0)],
        5.0,
    )
    lookup.hosts["a.app.test"] = (["10.0.0.1"], 5.0)
    lookup.hosts["b.app.test"] = (["10.0.0.2"], 5.0)
    up = upstream()

    async def main() -> None:
        discovery, member = follow(up, [srv], lookup)
        await discovery.start()
        a, b = up.targets
        lookup.services_of[srv.name] = (
            [ServiceRecord("a.app.test", 80, 4, 0), ServiceRecord("b.app.test", 80, 1, 9)],
            5.0,
        )
        assert await member.refresh(member.entries[0])
        change = member.apply()
        await discovery.stop()
        assert [(t, e.weight, e.backup) for t, e in change.retuned] == [
            (a, 4, False),
            (b, 1, True),
        ]
        assert up.targets == (a, b)
        assert (a.weight, a.backup, b.backup) == (4, False, True)
        assert picks(up, 10) == {"10.0.0.1:80"}  # b is a backup now
        a.state.set_available(False, by="health")
        assert picks(up, 3) == {"10.0.0.2:80"}

    run(main)
