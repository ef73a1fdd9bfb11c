"""The health board: health-check results shared by every process of a node.

With worker processes, one process runs the node's health checks and writes each target's
result here; every worker reads it (`HealthMirror`). The board lives in shared memory made
by the supervisor before it forks anything, so it outlives any one process: a restarted
checker and the workers of a reload start from what the board says (health and slow start
carry over for the targets that stay).

Layout: a fixed table of `CAPACITY` slots, open addressing on a 64-bit key hashed from the
upstream and target names, linear probing. One slot:

    seq u32 | wake u32 | key u64 | status u8 | checks u32 | passed u32
    | up_since f64 | load f64 | load_at f64

Rules:
1. One writer at a time (the checker process); the supervisor never runs two. It writes a
   slot under a sequence lock: `seq` is odd while it writes, so a reader that sees an odd
   or changed `seq` reads again.
2. `wake` is written by workers only (outlier detection asking for a check now); the
   writer reads it and never writes it. A lost increment cannot hide the change.
3. A slot whose target is gone is a tombstone (`status` GONE, key kept so probing goes on
   past it); the writer reuses it for a new key. Readers check the key on every read.
4. Times are `time.monotonic()`, one clock for every process of the machine. None is
   stored as NaN.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import math
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["CAPACITY", "Entry", "HealthBoard", "Status", "slot_key"]

CAPACITY = 4096
"""Health-checked targets a node can share: beyond this, a target's checks are not shared
(the checker logs it) and workers treat it as never checked."""

_SLOT = struct.Struct("<IIQB3xIIddd4x")  # 56 bytes: see the module docstring
_SEQ = struct.Struct("<I")
_WAKE_AT = 4
_KEY_AT = 8
_STATUS_AT = 16
_KEY = struct.Struct("<Q")
_BODY = struct.Struct("<QB3xIIddd")  # from the key on
_RETRIES = 100  # reads of a slot being written before giving up until the next poll


class Status(enum.Enum):
    """What a target's health checks say of it."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


_EMPTY, _GONE = 0, 4  # slot codes besides a status: never used (probing stops), tombstone
_CODES = {Status.UNKNOWN: 1, Status.UP: 2, Status.DOWN: 3}
_STATUSES = {code: status for status, code in _CODES.items()}


@dataclass(frozen=True, slots=True)
class Entry:
    """One target's shared result: its status, checks run and passed in a row, when it
    last came up from down (None: not since the checks began), and its last reported load
    and when it was made."""

    status: Status
    checks: int
    passed: int
    up_since: float | None = None
    load: float | None = None
    load_at: float | None = None


def slot_key(upstream: str, target: str) -> int:
    """The board key of `target` (its name, host:port) in `upstream`; never 0 (empty)."""
    digest = hashlib.blake2b(f"{upstream}\0{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class HealthBoard:
    """A table of `Entry` in shared memory; see the module docstring."""

    def __init__(self, memory: mmap.mmap, capacity: int) -> None:
        self._memory = memory
        self.capacity = capacity

    @classmethod
    def create(cls, capacity: int = CAPACITY) -> HealthBoard:
        """A zeroed board in anonymous shared memory; processes forked after share it."""
        return cls(mmap.mmap(-1, capacity * _SLOT.size), capacity)

    # -- reading (any process) -----------------------------------------------------------

    def find(self, key: int) -> int | None:
        """The slot holding `key`, or None."""
        for index in self._probe(key):
            found = self._key(index)
            if found == key:
                return index
            if found == 0:
                return None
        return None

    def read(self, index: int, key: int) -> Entry | None:
        """The entry in slot `index` if it still holds `key`; None if it does not, or is
        being written past all retries (rule 1)."""
        memory, at = self._memory, index * _SLOT.size
        for _ in range(_RETRIES):
            (before,) = _SEQ.unpack_from(memory, at)
            if before & 1:
                continue
            found, status, checks, passed, up_since, load, load_at = _BODY.unpack_from(
                memory, at + _KEY_AT
            )
            (after,) = _SEQ.unpack_from(memory, at)
            if before != after:
                continue
            if found != key or status not in _STATUSES:
                return None
            return Entry(
                _STATUSES[status], checks, passed, _none(up_since), _none(load), _none(load_at)
            )
        return None

    def request_check(self, index: int) -> None:
        """Ask the checker to check the target of slot `index` now (rule 2)."""
        at = index * _SLOT.size + _WAKE_AT
        (wake,) = _SEQ.unpack_from(self._memory, at)
        _SEQ.pack_into(self._memory, at, (wake + 1) & 0xFFFFFFFF)

    def wakes(self, index: int) -> int:
        """How often a check of slot `index` was asked for, as a counter to compare."""
        return int(_SEQ.unpack_from(self._memory, index * _SLOT.size + _WAKE_AT)[0])

    # -- writing (the checker only) ------------------------------------------------------

    def claim(self, key: int) -> int | None:
        """The slot for `key`: its own if it has one, else a free one (the first tombstone
        on its probe path, or the empty slot ending it); None if the board is full."""
        reusable = None
        for index in self._probe(key):
            found = self._key(index)
            if found == key:
                return index
            if found == 0:
                return index if reusable is None else reusable
            if reusable is None and self._status(index) == _GONE:
                reusable = index
        return reusable

    def write(self, index: int, key: int, entry: Entry) -> None:
        self._write(index, key, _CODES[entry.status], entry)

    def retire(self, index: int, key: int) -> None:
        """Make slot `index` a tombstone (rule 3)."""
        self._write(index, key, _GONE, Entry(Status.UNKNOWN, 0, 0))

    def _write(self, index: int, key: int, code: int, entry: Entry) -> None:
        memory, at = self._memory, index * _SLOT.size
        (seq,) = _SEQ.unpack_from(memory, at)
        seq |= 1  # odd: being written (an even seq becomes odd, a stale odd one stays so)
        _SEQ.pack_into(memory, at, seq)
        _BODY.pack_into(
            memory,
            at + _KEY_AT,
            key,
            code,
            entry.checks,
            entry.passed,
            _nan(entry.up_since),
            _nan(entry.load),
            _nan(entry.load_at),
        )
        _SEQ.pack_into(memory, at, (seq + 1) & 0xFFFFFFFF)

    def retire_all_but(self, keep: set[int]) -> int:
        """Tombstone every used slot whose key is not in `keep` (the targets of an older
        config); returns how many."""
        retired = 0
        for index in range(self.capacity):
            if self._status(index) in (_EMPTY, _GONE):
                continue
            key = self._key(index)
            if key not in keep:
                self.retire(index, key)
                retired += 1
        return retired

    def _key(self, index: int) -> int:
        return int(_KEY.unpack_from(self._memory, index * _SLOT.size + _KEY_AT)[0])

    def _status(self, index: int) -> int:
        return self._memory[index * _SLOT.size + _STATUS_AT]

    def _probe(self, key: int) -> Iterator[int]:
        start = key % self.capacity
        return itertools.chain(range(start, self.capacity), range(start))


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value
