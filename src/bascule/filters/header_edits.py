"""HeaderEdits: remove, set and add headers on a request or response head.

Semantics, in this order:
1. remove — every header with one of these names (case-insensitive) is dropped.
2. set — every existing header of that name is dropped and one with the configured name
   and value is appended (order between different names carries no meaning in HTTP).
3. add — appended, keeping any existing headers of that name.

Values are literals: no placeholders. Names keep the spelling the config gives them.
The edits come as raw bytes (`removal_pattern`, `lines`) because the engine edits the header
block without splitting it into pairs (PERFORMANCE.md: one Python step per header is what
header-heavy requests cannot afford).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from bascule.http.forwarding import names_pattern

# RFC 9110 token characters: anything else in a name would corrupt the head on the wire.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HeaderEdits:
    """Header edits prepared once into bytes: lines to drop (a pattern) and lines to add."""

    __slots__ = ("_append", "_drop")

    _drop: frozenset[bytes]  # lower-case names removed or replaced
    _append: tuple[tuple[bytes, bytes], ...]  # set headers, then added headers

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

    def removal_pattern(self, also: Iterable[bytes] = ()) -> re.Pattern[bytes] | None:
        """Matches each raw header line ("\\r\\nName: value") that remove or set drops,
        and those named in `also` (lower-case)."""
        dropped = self._drop.union(also)
        return names_pattern(tuple(dropped)) if dropped else None

    def lines(self) -> bytes:
        """The set and added headers as raw lines, each "\\r\\nName: value"."""
        return b"".join(b"\r\n" + name + b": " + value for name, value in self._append)


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
