"""Circuit breaking and queueing: at most `max_conns` requests per target at once, and a
bounded queue in front of a saturated upstream (HAProxy's maxconn and queue).

A request that finds every available target at its limit waits, first come first served,
until one finishes; a full queue, or a wait longer than `queue_timeout`, answers 503 at
once instead of piling more onto targets that are already as busy as they may be. Targets
at their limit are passed to the balancer as excluded, so the algorithms need not know.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from bascule.upstream.target import Target


class Waiter:
    """A request in the queue. `on_turn()` returns False if the request no longer wants
    its turn (its client left); `cancel()` takes it out of the queue."""

    __slots__ = ("on_turn", "timer", "waiting")

    def __init__(self, on_turn: Callable[[], bool]) -> None:
        self.on_turn = on_turn
        self.timer: asyncio.TimerHandle | None = None
        self.waiting = True

    def cancel(self) -> None:
        self.waiting = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Admission:
    __slots__ = ("_queue", "full", "max_pending", "queue_timeout")

    def __init__(self, max_pending: int, queue_timeout: float) -> None:
        self.max_pending = max_pending
        self.queue_timeout = queue_timeout
        self.full: frozenset[Target] = frozenset()  # targets at their limit right now
        self._queue: deque[Waiter] = deque()

    def waiting(self) -> int:
        """Requests waiting. (Not __len__: an Admission must not be falsy when its queue is
        empty, as code asking `if upstream.admission` means "are there limits".)"""
        return sum(1 for waiter in self._queue if waiter.waiting)

    def enter(self, target: Target) -> None:
        target.active += 1
        if target.max_conns is not None and target.active >= target.max_conns:
            self.full = self.full | {target}

    def leave(self, target: Target) -> None:
        target.active -= 1
        if target in self.full and (target.max_conns is None or target.active < target.max_conns):
            self.full = self.full - {target}
            self._wake()

    def wait(
        self, on_turn: Callable[[], bool], on_timeout: Callable[[], None], *, first: bool = False
    ) -> Waiter | None:
        """Queue a request: `on_turn()` when a target frees up, or `on_timeout()` after
        `queue_timeout`. None if the queue is full: answer 503 now. `first`: a request whose
        turn came but found its place taken again goes back to the head of the queue."""
        while self._queue and not self._queue[0].waiting:
            self._queue.popleft()
        if self.waiting() >= self.max_pending:
            return None
        waiter = Waiter(on_turn)

        def timed_out() -> None:
            if waiter.waiting:
                waiter.cancel()
                on_timeout()

        waiter.timer = asyncio.get_running_loop().call_later(self.queue_timeout, timed_out)
        if first:
            self._queue.appendleft(waiter)
        else:
            self._queue.append(waiter)
        return waiter

    def _wake(self) -> None:
        """Give a freed place to the longest waiting request, on the next loop turn (so the
        exchange that freed it finishes first); if it is gone by then, to the next."""
        while self._queue:
            waiter = self._queue.popleft()
            if waiter.waiting:
                waiter.cancel()
                asyncio.get_running_loop().call_soon(self._give, waiter)
                return

    def _give(self, waiter: Waiter) -> None:
        if not waiter.on_turn():
            self._wake()
