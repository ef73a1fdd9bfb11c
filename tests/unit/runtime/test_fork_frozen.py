"""Workers and helpers are forked with the supervisor's heap frozen for them."""

from __future__ import annotations

import gc
import os

from bascule.runtime.supervisor import fork_frozen


def test_the_child_never_collects_what_it_inherited_and_the_parent_still_does() -> None:
    inherited = [[] for _ in range(1000)]  # containers the collector tracks
    assert gc.get_freeze_count() == 0
    reader, writer = os.pipe()
    pid = fork_frozen()
    if pid == 0:  # the child: report how much of the heap is frozen, and leave at once
        os.write(writer, str(gc.get_freeze_count()).encode())
        os._exit(0)
    os.close(writer)
    _, status = os.waitpid(pid, 0)
    frozen_in_child = int(os.read(reader, 64))
    os.close(reader)
    assert status == 0
    assert frozen_in_child >= len(inherited)
    assert gc.get_freeze_count() == 0  # the parent's objects are collected as before
