"""Watchdog: the one timer a connection keeps for all of its timeouts.

Deadlines mostly move later (every read pushes an idle deadline back). Instead of
rescheduling a timer on each read, the watchdog fires at the earliest deadline it was asked
for and its owner re-evaluates: if the real deadline has moved, it arms again. That is one
timer operation every few seconds per connection rather than several per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Watchdog:
    __slots__ = ("_callback", "_loop", "at", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self.handle: asyncio.TimerHandle | None = None
        self.at = 0.0  # loop time the armed timer fires at

    def arm(self, when: float) -> None:
        """Make sure the owner is called back no later than `when` (loop time)."""
        handle = self.handle
        if handle is not None:
            if self.at <= when:
                return  # fires earlier and the owner re-evaluates
            handle.cancel()
        self.at = when
        self.handle = self._loop.call_at(when, self._fire)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        self._callback()
