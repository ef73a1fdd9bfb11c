"""The node's telemetry directory: every worker's totals, added up into one node.

The supervisor makes a private directory before it forks anything (and removes it when it
exits). In it:

- `worker-<pid>.json`: a worker's snapshot (`telemetry.metrics`), replaced atomically once
  a second and as the worker exits;
- `retired.json`: the counters of every worker gone, and the pids folded into them;
- `node.json`: what the supervisor says of the node (start, config, reloads);
- `purges.json`: cache purges the admin process asked for, numbered; every worker
  carries them out (`follow_purges`) and reports the last one done in its snapshot;
- `controls.json`: what an operator changed at runtime through the admin API (a target
  drained, disabled, reweighed); every worker applies it (`follow_controls`). A reload
  clears it: the new workers start from the file.

Rules, so that node counters never go down (Prometheus would read that as a restart):

1. When a worker has exited (drained, crashed, killed), the supervisor folds its last
   snapshot into `retired.json` and records its pid there; the worker's file is removed
   only `KEEP_FOLDED` seconds later.
2. A reader adds `retired.json` and then every worker file whose pid it does not list. A
   worker folded between the two reads is still on disk: counted once, never twice.
3. Gauges (connections open, targets up, requests in flight) come from live workers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bascule.telemetry.metrics import Snapshot, WorkerMetrics

__all__ = [
    "KEEP_FOLDED",
    "WRITE_EVERY",
    "NodeTotals",
    "SnapshotWriter",
    "TargetLive",
    "TelemetryDir",
    "follow_controls",
    "follow_purges",
]

log = logging.getLogger("bascule.telemetry")

WRITE_EVERY = 1.0  # seconds between a worker's snapshots: what a crash can lose
KEEP_FOLDED = 10.0  # seconds a folded worker's file is kept (rule 1)
PURGE_EVERY = 0.2  # seconds between a worker's looks at purges.json
PURGES_KEPT = 100  # requests kept in purges.json; a worker started later needs none

RequestKey = tuple[str, str, str, str, int]  # listener, route, upstream, target, code


@dataclass
class TargetLive:
    """A target as the live workers see it now: up in any of them (0/1), requests in
    flight in all, its weight, and who holds it out in any."""

    up: int = 0
    in_flight: int = 0
    weight: int = 1
    held_by: set[str] = field(default_factory=set)


@dataclass
class NodeTotals:
    """The node's series, added up (see `WorkerMetrics.snapshot` for what each holds)."""

    requests: dict[RequestKey, int] = field(default_factory=dict)
    # by route, upstream and target: a count per bucket, and the sum of seconds
    durations: dict[tuple[str, str, str], tuple[list[int], float]] = field(default_factory=dict)
    transferred: dict[str, tuple[int, int]] = field(default_factory=dict)  # received, sent
    connections: dict[str, int] = field(default_factory=dict)
    targets: dict[tuple[str, str], TargetLive] = field(default_factory=dict)
    workers: int = 0  # live workers whose snapshots were read
    retries: dict[str, int] = field(default_factory=dict)  # by upstream
    ejections: dict[str, int] = field(default_factory=dict)  # by upstream
    cache: dict[tuple[str, str], int] = field(default_factory=dict)  # by route and result
    connects: dict[str, tuple[list[int], float]] = field(default_factory=dict)  # by upstream

    def add_counters(self, snapshot: Snapshot) -> None:
        for listener, route, upstream, target, code, count in snapshot.get("requests", ()):
            key = (listener, route, upstream, target, code)
            self.requests[key] = self.requests.get(key, 0) + count
        for route, upstream, target, buckets, seconds in snapshot.get("durations", ()):
            series = (route, upstream, target)
            old, total = self.durations.get(series, ([0] * len(buckets), 0.0))
            merged = [a + b for a, b in zip(old, buckets, strict=True)]
            self.durations[series] = (merged, total + seconds)
        for listener, received, sent in snapshot.get("bytes", ()):
            was_in, was_out = self.transferred.get(listener, (0, 0))
            self.transferred[listener] = (was_in + received, was_out + sent)
        for upstream, count in snapshot.get("retries", ()):
            self.retries[upstream] = self.retries.get(upstream, 0) + count
        for upstream, count in snapshot.get("ejections", ()):
            self.ejections[upstream] = self.ejections.get(upstream, 0) + count
        for route, result, count in snapshot.get("cache", ()):
            self.cache[route, result] = self.cache.get((route, result), 0) + count
        for upstream, buckets, seconds in snapshot.get("connects", ()):
            old, total = self.connects.get(upstream, ([0] * len(buckets), 0.0))
            merged = [a + b for a, b in zip(old, buckets, strict=True)]
            self.connects[upstream] = (merged, total + seconds)

    def add_gauges(self, snapshot: Snapshot) -> None:
        for listener, count in snapshot.get("connections", ()):
            self.connections[listener] = self.connections.get(listener, 0) + count
        for upstream, target, up, in_flight, weight, held_by in snapshot.get("targets", ()):
            live = self.targets.get((upstream, target))
            if live is None:
                live = self.targets[upstream, target] = TargetLive(weight=weight)
            live.up = max(live.up, up)
            live.in_flight += in_flight
            live.held_by.update(held_by)

    def counters(self) -> Snapshot:
        """The counters as a snapshot (what `retired.json` holds)."""
        return {
            "requests": [[*key, count] for key, count in self.requests.items()],
            "durations": [[*key, b, s] for key, (b, s) in self.durations.items()],
            "bytes": [[name, i, o] for name, (i, o) in self.transferred.items()],
            "retries": [[u, n] for u, n in self.retries.items()],
            "ejections": [[u, n] for u, n in self.ejections.items()],
            "cache": [[route, result, n] for (route, result), n in self.cache.items()],
            "connects": [[u, b, s] for u, (b, s) in self.connects.items()],
        }


class TelemetryDir:
    """One node's telemetry directory; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> TelemetryDir:
        """A new private directory (mode 0700) under the system's temporary directory."""
        return cls(Path(tempfile.mkdtemp(prefix="bascule-node-")))

    def remove(self) -> None:
        for entry in self.path.iterdir():
            entry.unlink(missing_ok=True)
        self.path.rmdir()

    # -- writing ---------------------------------------------------------------------------

    def write(self, name: str, document: Any) -> None:
        """Replace file `name` atomically: a reader sees the old document or the new one."""
        temporary = self.path / f".{name}.{os.getpid()}"
        temporary.write_text(json.dumps(document, separators=(",", ":")))
        os.replace(temporary, self.path / name)

    def write_snapshot(self, snapshot: Snapshot) -> None:
        self.write(f"worker-{snapshot['pid']}.json", snapshot)

    def fold(self, pid: int) -> None:
        """Worker `pid` has exited: add its last snapshot to the retired counters (rule 1)."""
        retired = self._retired()
        folded: dict[str, float] = retired.get("folded", {})
        now = time.time()
        if str(pid) in folded:
            return
        totals = NodeTotals()
        totals.add_counters(retired)
        snapshot = self.read(f"worker-{pid}.json")
        if snapshot is not None:
            totals.add_counters(snapshot)
        folded[str(pid)] = now
        for old, when in list(folded.items()):
            if now - when > KEEP_FOLDED:
                (self.path / f"worker-{old}.json").unlink(missing_ok=True)
                del folded[old]
        self.write("retired.json", {**totals.counters(), "folded": folded})

    # -- reading ---------------------------------------------------------------------------

    def read(self, name: str) -> Any:
        """The document in file `name`, or None if there is none (or it cannot be read)."""
        try:
            return json.loads((self.path / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("telemetry file %s unreadable: %s", name, exc)
            return None

    def totals(self) -> NodeTotals:
        """Every worker's series added up, dead and alive (rules 2 and 3)."""
        retired = self._retired()
        folded = retired.get("folded", {})
        totals = NodeTotals()
        totals.add_counters(retired)
        for snapshot in self.live(folded):
            totals.add_counters(snapshot)
            totals.add_gauges(snapshot)
            totals.workers += 1
        return totals

    # -- cache purges ----------------------------------------------------------------------

    def request_purge(self, prefix: str) -> int:
        """Ask every worker to purge the cache keys starting with `prefix`; its number.
        The admin process is the only writer."""
        purges = self.read("purges.json") or {"last": 0, "requests": []}
        number = int(purges["last"]) + 1
        requests = [*purges["requests"], [number, prefix]][-PURGES_KEPT:]
        self.write("purges.json", {"last": number, "requests": requests})
        return number

    def purges_after(self, number: int) -> list[tuple[int, str]]:
        """The purges asked for after purge `number`."""
        purges = self.read("purges.json") or {"requests": []}
        return [(int(n), str(prefix)) for n, prefix in purges["requests"] if n > number]

    def last_purge(self) -> int:
        purges = self.read("purges.json") or {"last": 0}
        return int(purges["last"])

    def live(self, folded: Iterable[str] | None = None) -> Iterator[Snapshot]:
        """The snapshots of the workers not folded yet (alive, or just gone)."""
        skip = set(self._retired().get("folded", {}) if folded is None else folded)
        for entry in self.path.glob("worker-*.json"):
            if entry.name[len("worker-") : -len(".json")] in skip:
                continue
            snapshot = self.read(entry.name)
            if snapshot is not None:
                yield snapshot

    # -- runtime controls ------------------------------------------------------------------

    def controls(self) -> dict[str, Any]:
        """{"version": n, "targets": {"upstream/target": {"hold": ..., "weight": ...}}}"""
        found = self.read("controls.json")
        return found if isinstance(found, dict) else {"version": 0, "targets": {}}

    def set_control(self, target: str, **change: Any) -> dict[str, Any]:
        """Record an operator's change to `target` ("upstream/target"); its controls now.
        The admin process is the only writer."""
        controls = self.controls()
        current = {"hold": None, "weight": None, **controls["targets"].get(target, {})}
        current.update(change)
        controls["targets"][target] = current
        controls["version"] = int(controls["version"]) + 1
        self.write("controls.json", controls)
        return current

    def clear_controls(self) -> None:
        (self.path / "controls.json").unlink(missing_ok=True)

    def _retired(self) -> Snapshot:
        retired = self.read("retired.json")
        return retired if isinstance(retired, dict) else {}


async def follow_purges(
    directory: TelemetryDir,
    purge: Callable[[str], Awaitable[int]],
    done: Callable[[int, int], None],
) -> None:
    """A worker's side of purging: carry out each new request with `purge(prefix)` (keys
    removed), then `done(number, keys)`. Requests older than the worker are not its own:
    its caches started empty."""
    seen = directory.last_purge()
    while True:
        await asyncio.sleep(PURGE_EVERY)
        for number, prefix in directory.purges_after(seen):
            removed = await purge(prefix)
            seen = number
            done(number, removed)


async def follow_controls(
    directory: TelemetryDir, apply: Callable[[dict[str, dict[str, Any]]], None]
) -> None:
    """A worker's side of runtime controls: `apply(targets)` whenever they change (and at
    once, for a worker started after they were set)."""
    seen = -1
    while True:
        controls = directory.controls()
        if controls["version"] != seen:
            seen = controls["version"]
            apply(controls["targets"])
        await asyncio.sleep(PURGE_EVERY)


class SnapshotWriter:
    """A worker's snapshots: every `WRITE_EVERY` seconds while it serves, and once at the end."""

    def __init__(self, metrics: WorkerMetrics, directory: TelemetryDir) -> None:
        self.metrics = metrics
        self.directory = directory
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.write()
        self._task = asyncio.get_running_loop().create_task(self._every(), name="snapshots")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.write()

    def write(self) -> None:
        try:
            self.directory.write_snapshot(self.metrics.snapshot())
        except OSError as exc:  # a full disk must not stop the worker
            log.warning("cannot write the worker's metrics: %s", exc)

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(WRITE_EVERY)
            self.write()
