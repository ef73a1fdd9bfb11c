"""The retry budget: retries stay a bounded share of recent requests.

When targets brown out, every failed try that is retried adds load exactly where there is
none to spare; with three tries per request a struggling fleet sees three times the
traffic. A budget (Finagle's RetryBudget, Envoy's retry_budget) caps retries at `ratio` of
the requests of the last `window` seconds, plus `min_per_second` so that a quiet service
can still retry a rare failure. Counts are kept in one-second buckets: O(1) per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW = 10  # seconds of history
MIN_PER_SECOND = 3.0  # retries always allowed, whatever the ratio: 30 per window


class RetryBudget:
    __slots__ = (
        "_clock",
        "_mark",
        "_requests",
        "_retries",
        "_second",
        "min_per_second",
        "ratio",
        "total",
    )

    def __init__(
        self,
        ratio: float,
        *,
        min_per_second: float = MIN_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self._clock = clock
        self.total = 0  # requests ever: counting one is an increment, not a clock read
        self._mark = 0  # `total` when the current second's bucket was last settled
        self._requests = [0] * WINDOW
        self._retries = [0] * WINDOW
        self._second = int(clock())

    def request(self) -> None:
        """A request (its first try) was sent."""
        self.total += 1

    def _advance(self) -> int:
        """Settle the requests counted since the last call into the second they (mostly)
        fell in, clear the seconds that went by, and return the current bucket."""
        second = int(self._clock())
        if second != self._second:
            self._requests[self._second % WINDOW] += self.total - self._mark
            self._mark = self.total
            for passed in range(
                self._second + 1, self._second + 1 + min(second - self._second, WINDOW)
            ):
                self._requests[passed % WINDOW] = self._retries[passed % WINDOW] = 0
            self._second = second
        return second % WINDOW

    def can_retry(self) -> bool:
        self._advance()
        recent = sum(self._requests) + self.total - self._mark
        return sum(self._retries) < self.min_per_second * WINDOW + self.ratio * recent

    def retry(self) -> None:
        """A retry was sent."""
        self._retries[self._advance()] += 1
