"""HeaderEdits: remove, set and add headers on a request or response head.

Semantics, in this order:
1. remove — every header with one of these names (case-insensitive) is dropped.
2. set — every existing header of that name is dropped and one with the configured name
   and value is appended (order between different names carries no meaning in HTTP).
3. add — appended, keeping any existing headers of that name.

Values are literals: no placeholders. Names keep the spelling the config gives them.
The same edits also come as raw bytes (`lines`, `removal_pattern`) for an engine that edits
the header block without splitting it into pairs (PERFORMANCE.md: one Python step per
header is what header-heavy requests cannot afford).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from bascule.http.forwarding import names_pattern

# RFC 9110 token characters: anything else in a name would corrupt the head on the wire.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HeaderEdits:
    """Header edits prepared once into bytes and applied to a header list in place."""

    __slots__ = ("_append", "_drop", "_touched")

    _drop: frozenset[bytes]  # lower-case names removed or replaced
    _append: tuple[tuple[bytes, bytes], ...]  # set headers, then added headers
    _touched: frozenset[bytes]

    def __init__(
        self,
        set: Mapping[str, str] | None = None,  # named as the config key, shadowing the builtin
        add: Mapping[str, str] | None = None,
        remove: Iterable[str] | None = None,
    ) -> None:
        to_set = _pairs("set", set)
        to_add = _pairs("add", add)
        removed = frozenset(_name("remove", name).lower() for name in remove or ())
        self._drop = removed | {name.lower() for name, _ in to_set}
        self._append = to_set + to_add
        self._touched = self._drop | {name.lower() for name, _ in to_add}

    @property
    def is_empty(self) -> bool:
        """True when applying would change nothing, so the caller can skip the call."""
        return not self._touched

    def names_touched(self) -> frozenset[bytes]:
        """Lower-case names these edits may remove, replace or add."""
        return self._touched

    def removal_pattern(self) -> re.Pattern[bytes] | None:
        """Matches each raw header line ("\\r\\nName: value") that remove or set drops."""
        return names_pattern(tuple(self._drop)) if self._drop else None

    def lines(self) -> bytes:
        """The set and added headers as raw lines, each "\\r\\nName: value"."""
        return b"".join(b"\r\n" + name + b": " + value for name, value in self._append)

    def apply(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Edit `headers` in place; the list is rebuilt only if a header is dropped."""
        drop = self._drop
        if drop:
            for i, (name, _) in enumerate(headers):
                if name.lower() in drop:
                    headers[i:] = [pair for pair in headers[i:] if pair[0].lower() not in drop]
                    break
        if self._append:
            headers.extend(self._append)


def _pairs(key: str, headers: Mapping[str, str] | None) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(
        (_name(key, name), _value(key, name, value)) for name, value in (headers or {}).items()
    )


def _name(key: str, name: str) -> bytes:
    if not name or not _TOKEN.issuperset(name):
        raise ValueError(f"headers {key}: {name!r} is not a header name")
    return name.encode("ascii")


def _value(key: str, name: str, value: str) -> bytes:
    # A line break or NUL in a value would let the config inject headers or break the head.
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"headers {key}: the value of {name} contains a line break or NUL")
    return value.encode()
