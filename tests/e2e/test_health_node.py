"""Health checks with worker processes: run once per node by the health process, followed by
every worker, carried over a reload, restarted after a crash."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from e2e.backends import Backend, Service, checks, health_check, served
from e2e.proxy import config, free_port, wait_until
from e2e.supervised import Instance, get, listening, running

INTERVAL = 0.1


def health(**overrides: Any) -> dict[str, Any]:
    return health_check(INTERVAL, **overrides)


def node(port: int, *targets: Backend, **check: Any) -> dict[str, Any]:
    """Two workers in front of `targets`, checked with `health(**check)`."""
    return {
        **config(*targets, upstream={"health": health(**check)}, **listening(port)),
        "workers": 2,
    }


def bodies(port: int, count: int) -> set[bytes]:
    """What `count` requests on new connections (spread over the workers) were answered."""
    return {get(port).rsplit(b"\r\n", 1)[-1] for _ in range(count)}


def started(bascule: Instance) -> None:
    assert wait_until(lambda: len(bascule.workers()) == 2, timeout=10)
    assert wait_until(lambda: len(bascule.children("bascule-health")) == 1, timeout=10)


def test_checks_run_once_per_node_and_every_worker_follows_them(backend, tmp_path):
    port = free_port()
    well, sick = Service("well"), Service("sick")
    a, b = backend(well.respond), backend(sick.respond)
    with running(node(port, a, b), tmp_path) as bascule:
        started(bascule)
        before, begun = len(checks(b)), time.monotonic()
        time.sleep(1.5)
        ran = len(checks(b)) - before
        expected = (time.monotonic() - begun) / INTERVAL
        assert expected * 0.5 < ran < expected * 1.3, (ran, expected)  # once, not per worker

        sick.health = 503
        assert wait_until(lambda: bodies(port, 5) == {b"well"}, timeout=5)
        reached = len(served(b))
        assert bodies(port, 40) == {b"well"}  # no worker sends it a request
        assert len(served(b)) == reached

        sick.health = 200
        assert wait_until(lambda: b"sick" in bodies(port, 10), timeout=5)
    # each transition logged once for the node, not once per worker
    assert bascule.log.count(f"target {b.address} of upstream app is down") == 1
    assert bascule.log.count(f"target {b.address} of upstream app is up") == 2  # first, back


def test_a_down_target_stays_down_through_a_reload(backend, tmp_path):
    port = free_port()
    well, hung = Service("well"), Service("hung")
    hung.health_delay = 30.0  # its checks time out: a new checker would take 1 s to know
    a, b = backend(well.respond), backend(hung.respond)
    cfg = node(port, a, b)
    with running(cfg, tmp_path) as bascule:
        started(bascule)
        assert wait_until(lambda: bodies(port, 5) == {b"well"}, timeout=5)
        first = bascule.workers()
        cfg["upstreams"]["app"]["health"]["interval"] = "200ms"  # a change the reload applies
        bascule.write(cfg)
        bascule.reload()
        assert wait_until(lambda: not bascule.workers() & first, timeout=10)
        reached = len(served(b))
        assert bodies(port, 30) == {b"well"}  # within the new checker's first second
        assert len(served(b)) == reached
    assert bascule.log.count(f"target {b.address} of upstream app is down") == 1


def test_a_killed_health_process_is_replaced_and_the_state_kept(backend, tmp_path):
    port = free_port()
    well, sick = Service("well"), Service("sick")
    sick.health = 503
    a, b = backend(well.respond), backend(sick.respond)
    with running(node(port, a, b), tmp_path) as bascule:
        started(bascule)
        assert wait_until(lambda: bodies(port, 5) == {b"well"}, timeout=5)
        (victim,) = bascule.children("bascule-health")
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: bascule.children("bascule-health") - {victim}, timeout=10)
        counted = len(checks(b))
        assert wait_until(lambda: len(checks(b)) > counted + 3, timeout=5)  # checking again
        assert bodies(port, 20) == {b"well"}
        sick.health = 200
        assert wait_until(lambda: b"sick" in bodies(port, 10), timeout=5)
    assert f"health process {victim} was killed by SIGKILL; starting another" in bascule.log
    assert bascule.log.count(f"target {b.address} of upstream app is down") == 1
