"""Shared health checks: the board in shared memory, the checker writing it and the worker's
mirror reading it. The board is the real one (an anonymous shared mapping); a forked child
reads what the parent wrote."""

from __future__ import annotations

import os

import pytest

from bascule.upstream.health import HealthChecker, HealthSettings
from bascule.upstream.health_board import Entry, HealthBoard, Status, slot_key
from bascule.upstream.health_mirror import HealthMirror
from bascule.upstream.probe import Outcome, TcpProbe
from bascule.upstream.target import Target

UP, DOWN, UNKNOWN = Status.UP, Status.DOWN, Status.UNKNOWN
PASS = Outcome(True, "GET /healthz → 200")
FAIL = Outcome(False, "GET /healthz → 503")


def settings(healthy: int = 2, unhealthy: int = 3, initial: Status = UNKNOWN) -> HealthSettings:
    return HealthSettings(TcpProbe(), healthy=healthy, unhealthy=unhealthy, initial=initial)


def target(port: int = 9000) -> Target:
    return Target("127.0.0.1", port)


# -- the board -----------------------------------------------------------------------------


def test_an_entry_written_is_read_back_under_its_key() -> None:
    board = HealthBoard.create(16)
    key = slot_key("web", "127.0.0.1:9000")
    slot = board.claim(key)
    assert slot is not None
    assert board.find(key) is None  # claimed is not written
    entry = Entry(UP, 7, 3, 12.5, 40.0, 11.0)
    board.write(slot, key, entry)
    assert board.find(key) == slot
    assert board.read(slot, key) == entry
    assert board.read(slot, key + 1) is None  # the key is checked on every read


def test_keys_that_collide_probe_on_to_the_next_slot() -> None:
    board = HealthBoard.create(4)
    keys = [4, 8, 12]  # all start at slot 0
    for n, key in enumerate(keys):
        slot = board.claim(key)
        assert slot == n
        board.write(slot, key, Entry(DOWN, n, 0))
    assert [board.find(k) for k in keys] == [0, 1, 2]
    assert board.find(16) is None


def filled(capacity: int, *keys: int) -> HealthBoard:
    """A board with an up entry for each of `keys`, each where `claim` put it."""
    board = HealthBoard.create(capacity)
    for key in keys:
        slot = board.claim(key)
        assert slot is not None
        board.write(slot, key, Entry(UP, 1, 1))
    return board


def test_a_retired_slot_is_skipped_by_readers_and_reused_by_the_writer() -> None:
    board = filled(4, 4, 8)
    board.retire(0, 4)
    assert board.read(0, 4) is None
    assert board.find(8) == 1  # probing goes on past the tombstone
    assert board.claim(8) == 1
    assert board.claim(12) == 0  # the tombstone is reused


def test_retire_all_but_keeps_the_named_keys() -> None:
    board = filled(8, 1, 2, 3)
    assert board.retire_all_but({2}) == 2
    assert [board.read(k, k) is not None for k in (1, 2, 3)] == [False, True, False]


def test_a_full_board_has_no_slot_to_give() -> None:
    board = filled(2, 2, 3)
    assert board.claim(5) is None


def test_a_slot_being_written_is_not_read_half_done() -> None:
    board = HealthBoard.create(4)
    board.write(1, 5, Entry(UP, 1, 1))
    memory = board._memory
    seq = int.from_bytes(memory[56:60], "little")
    memory[56:60] = (seq + 1).to_bytes(4, "little")  # odd: a writer is between its stores
    assert board.read(1, 5) is None
    board.write(1, 5, Entry(DOWN, 2, 0))  # a new writer repairs a stale odd seq
    assert board.read(1, 5) == Entry(DOWN, 2, 0)


def test_a_forked_process_reads_what_the_parent_writes_after_the_fork() -> None:
    board = HealthBoard.create(8)
    key = slot_key("web", "a")
    reader, writer = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.read(done_r, 1)
        slot = board.find(key)
        entry = board.read(slot, key) if slot is not None else None
        os.write(writer, b"down" if entry is not None and entry.status is DOWN else b"none")
        os._exit(0)
    slot = board.claim(key)
    assert slot is not None
    board.write(slot, key, Entry(DOWN, 3, 0))
    os.write(done_w, b"!")
    assert os.read(reader, 4) == b"down"
    os.waitpid(pid, 0)
    for fd in (reader, writer, done_r, done_w):
        os.close(fd)


def test_wake_requests_count_up() -> None:
    board = HealthBoard.create(4)
    before = board.wakes(2)
    board.request_check(2)
    board.request_check(2)
    assert board.wakes(2) == before + 2


# -- the checker writing the board --------------------------------------------------------


def entry_of(board: HealthBoard, upstream: str, t: Target) -> Entry | None:
    key = slot_key(upstream, t.name)
    slot = board.find(key)
    return board.read(slot, key) if slot is not None else None


def test_the_checker_writes_every_result_with_its_counts() -> None:
    board, t = HealthBoard.create(16), target()
    checker = HealthChecker("web", [t], settings(), board=board)
    assert entry_of(board, "web", t) == Entry(UNKNOWN, 0, 0)
    checker.record(t, PASS)
    checker.record(t, PASS)
    found = entry_of(board, "web", t)
    assert found is not None
    assert (found.status, found.checks, found.passed) == (UP, 2, 2)
    assert found.up_since is None  # unknown to up is no comeback: no slow start
    checker.record(t, Outcome(True, "ok", load=30.0))
    found = entry_of(board, "web", t)
    assert found is not None
    assert found.load == 30.0


def test_a_comeback_from_down_is_written_with_its_time() -> None:
    board, t = HealthBoard.create(16), target()
    checker = HealthChecker("web", [t], settings(healthy=1, initial=DOWN), board=board)
    checker.record(t, PASS)
    found = entry_of(board, "web", t)
    assert found is not None
    assert found.status is UP
    assert found.up_since is not None


def test_a_new_checker_starts_from_the_board_not_from_initial() -> None:
    board, t = HealthBoard.create(16), target()
    first = HealthChecker("web", [t], settings(), board=board)
    first.record(t, FAIL)
    # a reload: same target, a config that says targets start up
    again = target()
    second = HealthChecker("web", [again], settings(initial=UP), board=board)
    assert second.status(again) is DOWN
    assert not again.state.available
    second.record(again, PASS)
    second.record(again, PASS)
    assert again.state.available


def test_a_removed_target_leaves_the_board() -> None:
    board, a, b = HealthBoard.create(16), target(1), target(2)
    checker = HealthChecker("web", [a, b], settings(), board=board)
    checker.sync([a])
    assert entry_of(board, "web", b) is None
    assert entry_of(board, "web", a) is not None


def test_the_checker_hears_a_workers_request_for_a_check() -> None:
    board, t = HealthBoard.create(16), target()
    checker = HealthChecker("web", [t], settings(), board=board)
    watch = checker._watches[t]
    assert not watch.wake.is_set()
    checker.follow_board()
    assert not watch.wake.is_set()
    assert watch.slot is not None
    board.request_check(watch.slot)
    checker.follow_board()
    assert watch.wake.is_set()


# -- the worker's mirror -------------------------------------------------------------------


def pair(**kwargs: object) -> tuple[HealthBoard, Target, HealthChecker, Target, HealthMirror]:
    """A checker's target and a worker's copy of it, sharing one board."""
    board = HealthBoard.create(16)
    s = settings(**kwargs)  # type: ignore[arg-type]
    checked, served = target(), target()
    return (
        board,
        checked,
        HealthChecker("web", [checked], s, board=board),
        served,
        HealthMirror("web", [served], s, board),
    )


def test_the_mirror_follows_the_checkers_transitions() -> None:
    _, checked, checker, served, mirror = pair()
    mirror.start()
    assert served.state.available
    checker.record(checked, FAIL)
    assert served.state.available  # until it reads the board
    mirror.refresh()
    assert not served.state.available
    assert served.state.held_by == ("health",)
    checker.record(checked, PASS)
    checker.record(checked, PASS)
    mirror.refresh()
    assert served.state.available


def test_a_target_not_on_the_board_has_the_initial_status() -> None:
    board, served = HealthBoard.create(16), target()
    mirror = HealthMirror("web", [served], settings(initial=DOWN), board)
    mirror.start()
    assert not served.state.available


def test_a_new_worker_goes_on_with_the_slow_start_of_a_target_that_came_back() -> None:
    board, checked, checker, _, _ = pair(healthy=1, initial=DOWN)
    checker.record(checked, PASS)
    came_up = entry_of(board, "web", checked)
    assert came_up is not None
    newcomer = target()  # a worker started by a reload
    assert newcomer.state.up_since is None
    HealthMirror("web", [newcomer], settings(), board).start()
    assert newcomer.state.up_since == came_up.up_since


def test_load_reports_keep_the_time_they_were_made() -> None:
    board, checked, checker, served, mirror = pair()
    checker.record(checked, Outcome(True, "ok", load=55.0))
    mirror.refresh()
    made = entry_of(board, "web", checked)
    assert made is not None
    assert (served.state.load, served.state.load_at) == (55.0, made.load_at)


def test_a_recheck_holds_the_target_in_this_worker_until_fresh_passes() -> None:
    board, checked, checker, served, mirror = pair(healthy=2)
    other = target()  # the same target in another worker
    other_mirror = HealthMirror("web", [other], settings(healthy=2), board)
    checker.record(checked, PASS)
    checker.record(checked, PASS)  # up, 2 passes in a row already
    mirror.refresh()
    other_mirror.refresh()
    slot = checker._watches[checked].slot
    assert slot is not None
    asked = board.wakes(slot)
    mirror.recheck(served)  # an ejection ended in this worker
    assert board.wakes(slot) == asked + 1
    assert not served.state.available
    checker.record(checked, PASS)
    mirror.refresh()
    assert not served.state.available  # one fresh pass of two
    checker.record(checked, PASS)
    mirror.refresh()
    assert served.state.available
    other_mirror.refresh()
    assert other.state.available  # never held elsewhere


def test_a_failure_after_a_recheck_restarts_the_count() -> None:
    _, checked, checker, served, mirror = pair(healthy=2)
    mirror.recheck(served)
    for outcome in (PASS, FAIL, PASS):
        checker.record(checked, outcome)
    mirror.refresh()
    assert not served.state.available
    checker.record(checked, PASS)
    mirror.refresh()
    assert served.state.available


@pytest.mark.parametrize("initial", [UNKNOWN, UP])
def test_a_target_gone_from_the_board_falls_back_to_initial(initial: Status) -> None:
    _, checked, checker, served, mirror = pair(unhealthy=1, initial=initial)
    checker.record(checked, FAIL)
    mirror.refresh()
    assert not served.state.available
    checker.sync([])  # a reload dropped it; this old worker still drains
    mirror.refresh()
    assert served.state.available
