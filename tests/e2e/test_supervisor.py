"""The real `bascule run`: worker processes under a supervisor, reloads under load, crashes,
and the signals an operator sends."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from e2e.backends import named
from e2e.proxy import accepts, config, free_port, wait_until
from e2e.supervised import BASCULE, failures, get, listening, running, steady_load


def test_workers_share_the_listener(backend, tmp_path):
    port = free_port()
    cfg = config(backend(named("a")), **listening(port))
    with running({**cfg, "workers": 2}, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2)
        assert all(get(port).endswith(b"a") for _ in range(20))


def test_ten_reloads_under_load_fail_no_request(backend, tmp_path):
    port = free_port()
    a, b = backend(named("a")), backend(named("b"))
    with running(config(a, **listening(port)), tmp_path) as bascule:
        stop, results = threading.Event(), []
        threads = steady_load(port, stop, results)
        try:
            for n in range(10):
                first = bascule.workers()
                bascule.write(config(a if n % 2 else b, **listening(port)))
                bascule.reload()
                assert wait_until(lambda first=first: not bascule.workers() & first, timeout=10)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert len(results) > 100
    assert failures(results) == []
    served = {r.rsplit(b"\r\n", 1)[-1] for r in results}
    assert served == {b"a", b"b"}  # both configs served in turn


def test_an_invalid_reload_changes_nothing(backend, tmp_path):
    port = free_port()
    with running(config(backend(named("a")), **listening(port)), tmp_path) as bascule:
        workers = bascule.workers()
        bascule.path.write_text("listeners: [{name: main, bind: 127.0.0.1:notaport}]\n")
        bascule.reload()
        time.sleep(1.0)
        assert bascule.workers() == workers
        assert get(port).endswith(b"a")
    assert "reload refused, the running config stays" in bascule.log


def test_a_removed_listener_stops_accepting_and_a_new_one_starts(backend, tmp_path):
    first, second = free_port(), free_port()
    target = backend(named("a"))
    cfg = config(target, **listening(first))
    cfg["listeners"].append({"name": "extra", "bind": f"127.0.0.1:{second}"})
    with running(cfg, tmp_path) as bascule:
        assert get(second).endswith(b"a")
        third = free_port()
        bascule.write(config(target, **listening(third)))
        bascule.reload()
        assert wait_until(lambda: not accepts(second), timeout=10)
        assert wait_until(lambda: not accepts(first), timeout=10)
        assert get(third).endswith(b"a")


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(backend, tmp_path):
    port = free_port()
    cfg = config(backend(named("a", 0.01)), **listening(port))
    with running({**cfg, "workers": 2}, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2)
        stop, results = threading.Event(), []
        threads = steady_load(port, stop, results)
        time.sleep(0.5)
        victim = min(bascule.workers())
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(bascule.workers() - {victim}) == 2, timeout=10)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
    assert len(failures(results)) <= 4  # at most one in flight per client on the victim
    assert f"worker {victim} was killed by SIGKILL" in bascule.log


def test_sigquit_stops_at_once(backend, tmp_path):
    port = free_port()
    with running(config(backend(named("a", 5.0)), **listening(port)), tmp_path) as bascule:
        slow = threading.Thread(target=get, args=(port,))
        slow.start()
        time.sleep(0.3)
        started = time.monotonic()
        bascule.proc.send_signal(signal.SIGQUIT)
        assert bascule.proc.wait(5) == 0
        assert time.monotonic() - started < 2.0  # not the 5 s the request would take
        slow.join()
    assert not bascule.pid_file.exists()


def test_bascule_reload_checks_the_file_then_signals(backend, tmp_path):
    port = free_port()
    a, b = backend(named("a")), backend(named("b"))
    with running(config(a, **listening(port)), tmp_path) as bascule:
        bascule.path.write_text("listeners: []\n")
        command = [*BASCULE, "reload", "-c", str(bascule.path), "--pid-file", str(bascule.pid_file)]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert refused.returncode == 2
        assert "listeners" in refused.stderr
        bascule.write(config(b, **listening(port)))
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        assert wait_until(lambda: get(port).endswith(b"b"), timeout=10)


def test_a_second_instance_with_the_same_pid_file_refuses_to_start(backend, tmp_path):
    port = free_port()
    with running(config(backend(named("a")), **listening(port)), tmp_path) as bascule:
        other = subprocess.run(
            [*BASCULE, "run", "-c", str(bascule.path), "--pid-file", str(bascule.pid_file)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert other.returncode == 1
    assert "names a running Bascule" in other.stderr
