"""What is known, live, about one target: requests in flight, response times, reported load,
whether it takes traffic, and since when.

A `TargetState` belongs to the target (the proxy's `Target.state`), not to a balancer, so it
survives the balancer being rebuilt when membership changes. The proxy and health checks
write it through the methods below, each O(1); balancers only read it. A balancer that keeps
an index over its targets (least_conn's heap, for one) asks to be told of every change with
`watch`; outlier detection asks to be told of every failed request with `on_failure`.

Several parties may take a target out of service at once (health checks, outlier detection,
an operator draining it), each for its own reason: it is available only while none holds it
down, so one party bringing it back cannot undo another's hold.

Times come from one monotonic clock, injected so tests control it; give the balancer the
same clock (`balancing.create(..., clock=...)`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Literal

__all__ = [
    "DEFAULT_RTT",
    "FAILURE_RTT",
    "HOLDERS",
    "MAX_LOAD_BODY",
    "RAMP_FLOOR",
    "RTT_DECAY",
    "Holder",
    "TargetState",
    "parse_load_body",
    "parse_load_header",
    "ramp",
]

Clock = Callable[[], float]

Holder = Literal["operator", "health", "outlier", "draining"]
"""Who takes a target out of service with `set_available(False, by=...)`."""

HOLDERS: dict[Holder, int] = {"operator": 1, "health": 2, "outlier": 4, "draining": 8}
"""Each holder's bit in `TargetState.held`."""

DEFAULT_RTT = 0.030
"""Seconds assumed for a target not yet measured: a typical in-datacentre service (Linkerd's
default). It decays like a measurement, so a new target is soon tried and measured."""

RTT_DECAY = 10.0
"""Time constant (seconds) of the response-time average: a sample's weight falls by e every
10 s, and an idle target's estimate decays toward zero at that pace (as Finagle and Linkerd)."""

FAILURE_RTT = 1.0
"""A failed request counts as a response of at least this many seconds, so a target that
fails fast (connection refused) does not look fast to least_time."""

RAMP_FLOOR = 0.01
"""The share of its weight a target gets at the start of slow start: small, never zero, so
an effective weight can always divide."""

MAX_LOAD_BODY = 4096
"""Longest health-check body parsed for a load report; anything longer is not one."""

_LOAD_TEXT = re.compile(rb"[ \t]*(\d{1,3}(?:\.\d+)?)[ \t]*")


class TargetState:
    """Live facts about one target, written by the proxy and health checks, read by balancers.

    Feedback calls, all O(1) plus the watching balancer's update (O(log n) at most):

    - `start()` when a request is sent to the target (before connecting);
    - `finish(seconds, ok)` when that request ends, however it ends: `seconds` from start
      to the last response byte (or to the failure), `ok` False for a connect error, a
      timeout, a reset or a 5xx the proxy counts as a failure. Exactly one `finish` per
      `start`, even on error paths;
    - `report_load(load)` when the target reports its load (0-100), from a response header
      or a health-check body; see `parse_load_header` / `parse_load_body`;
    - `ramp_from(up_since)` when another process saw it come up (slow start carries over);
    - `set_available(flag, by=...)` when health checks find it down or up, outlier
      detection ejects it or lets it back, or it starts draining. It is available while no
      holder keeps it down; coming back up starts its slow start. Never assign `available`.

    `failures` counts failed requests in a row (`finish(ok=False)`); a success zeroes it.
    """

    __slots__ = (
        "_clock",
        "_on_failure",
        "_rtt",
        "_rtt_at",
        "_watcher",
        "available",
        "failures",
        "held",
        "in_flight",
        "load",
        "load_at",
        "up_since",
    )

    def __init__(self, *, clock: Clock = time.monotonic, up_since: float | None = None) -> None:
        """`up_since`: None for a target present when its upstream starts (no slow start);
        `clock()` for one added to a running upstream, so it ramps up."""
        self._clock = clock
        self.available = True  # takes new requests; False when down or draining
        self.held = 0  # HOLDERS bits of who keeps it out of service; available iff 0
        self.in_flight = 0  # requests started and not finished
        self.failures = 0  # failed requests in a row; outlier detection zeroes it too
        self.load: float | None = None  # last reported load, 0-100
        self.load_at = -math.inf  # when it was reported
        self.up_since = up_since  # when it last became available; None: since before start
        self._rtt = DEFAULT_RTT  # peak-EWMA of response time, as of _rtt_at
        self._rtt_at = clock()
        self._watcher: Callable[[], None] | None = None
        self._on_failure: Callable[[int], None] | None = None

    def __repr__(self) -> str:
        up = "up" if self.available else f"down ({', '.join(self.held_by)})"
        return f"TargetState({up}, in_flight={self.in_flight}, load={self.load})"

    def watch(self, watcher: Callable[[], None] | None) -> None:
        """Call `watcher` after every change; replaces the previous one (a target belongs to
        one balancer at a time, its upstream's current one). None stops watching."""
        self._watcher = watcher

    def on_failure(self, listener: Callable[[int], None] | None) -> None:
        """Call `listener(failures in a row)` after every failed request (one slot, for
        outlier detection; separate from `watch`, which belongs to the balancer). None stops."""
        self._on_failure = listener

    @property
    def held_by(self) -> tuple[Holder, ...]:
        """Who keeps the target out of service, if anyone (for logs and the admin API)."""
        return tuple(holder for holder, bit in HOLDERS.items() if self.held & bit)

    def start(self) -> None:
        self.in_flight += 1
        if self._watcher is not None:
            self._watcher()

    def finish(self, seconds: float, ok: bool = True) -> None:
        if self.in_flight > 0:
            self.in_flight -= 1
        sample = seconds if ok else max(seconds, FAILURE_RTT)
        now = self._clock()
        decay = math.exp(-max(now - self._rtt_at, 0.0) / RTT_DECAY)
        estimate = self._rtt * decay
        if sample > estimate:
            self._rtt = sample  # the peak: a slow response counts at once, in full
        else:
            # The old estimate weighs what is left of it after the time since it was made.
            self._rtt = estimate + sample * (1.0 - decay)
        self._rtt_at = now
        if self._watcher is not None:
            self._watcher()
        if ok:
            self.failures = 0
        else:
            self.failures += 1
            if self._on_failure is not None:
                self._on_failure(self.failures)

    def report_load(self, load: float, *, at: float | None = None) -> None:
        """`at`: when the report was made, if not now (read from another process)."""
        if not 0.0 <= load <= 100.0:
            raise ValueError(f"a load is 0-100, got {load!r}")
        self.load = load
        self.load_at = self._clock() if at is None else at
        if self._watcher is not None:
            self._watcher()

    def ramp_from(self, up_since: float) -> None:
        """The target came up at `up_since`, before this process knew of it (a worker
        started by a reload): its slow start goes on from then."""
        self.up_since = up_since
        if self._watcher is not None:
            self._watcher()

    def set_available(self, available: bool, *, by: Holder = "operator") -> None:
        """Take the target out of service for `by`, or end `by`'s hold; it is available
        again once no one holds it."""
        bit = HOLDERS[by]
        held = self.held & ~bit if available else self.held | bit
        self.held = held
        if not held and not self.available:
            self.up_since = self._clock()
        self.available = not held
        if self._watcher is not None:
            self._watcher()

    def rtt(self, now: float) -> float:
        """The peak-EWMA response time at `now`, decayed toward zero since the last sample."""
        elapsed = now - self._rtt_at
        if elapsed <= 0.0:
            return self._rtt
        return self._rtt * math.exp(-elapsed / RTT_DECAY)

    def fresh_load(self, now: float, max_age: float) -> float | None:
        """The reported load if it is at most `max_age` old, else None (unknown)."""
        if self.load is None or now - self.load_at > max_age:
            return None
        return self.load


def ramp(up_since: float | None, now: float, slow_start: float) -> float:
    """The fraction of its weight a target gets `now`: 1 once slow start is over (or off)."""
    if up_since is None or slow_start <= 0.0:
        return 1.0
    elapsed = now - up_since
    if elapsed >= slow_start:
        return 1.0
    return max(elapsed / slow_start, RAMP_FLOOR)


def parse_load_header(value: bytes) -> float | None:
    """A load from a header value such as b"42" or b"37.5"; None for anything else.

    Only plain decimal numbers from 0 to 100 count: no sign, exponent, unit, "nan" or list.
    A report that cannot be read is ignored rather than guessed at.
    """
    match = _LOAD_TEXT.fullmatch(value)
    if match is None:
        return None
    load = float(match.group(1))
    return load if load <= 100.0 else None


def parse_load_body(body: bytes) -> float | None:
    """A load from a health-check body: a JSON object with a number `load`, as {"load": 42},
    or a bare number as in the header; None for anything else."""
    if len(body) > MAX_LOAD_BODY:
        return None
    text = body.strip()
    if not text.startswith(b"{"):
        return parse_load_header(text)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    load = document.get("load")
    if isinstance(load, bool) or not isinstance(load, int | float):
        return None
    if not 0.0 <= load <= 100.0:  # also rejects NaN
        return None
    return float(load)
