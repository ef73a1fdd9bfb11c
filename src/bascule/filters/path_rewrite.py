"""PathRewrite: change the request path before it goes upstream.

The steps run in a fixed order, whatever order the config lists them in:
1. strip_prefix — removed only when the path starts with it (plain bytes, as route prefixes
   match); the result always starts with ``/``, so stripping ``/v1`` or ``/v1/`` from
   ``/v1/users`` gives ``/users``, and from ``/v1`` gives ``/``.
2. pattern → replacement — the first match only (`re.sub` with ``count=1``); the
   replacement refers to groups as ``\\1`` or ``\\g<name>``; an empty result becomes ``/``.
3. add_prefix — joined with exactly one ``/``: ``/api`` or ``/api/`` plus ``/users`` gives
   ``/api/users``; plus ``/`` gives ``/api/``.

All of it works on the raw path (percent-encoded, without the query) as bytes.
"""

from __future__ import annotations

import re


class PathRewrite:
    """A path rewrite prepared once per route and applied to every request."""

    __slots__ = ("_add", "_pattern", "_replacement", "_strip")

    _strip: bytes | None
    _pattern: re.Pattern[bytes] | None
    _replacement: bytes
    _add: bytes | None  # without its trailing slash: the join supplies exactly one

    def __init__(
        self,
        strip_prefix: str | None = None,
        add_prefix: str | None = None,
        pattern: str | None = None,
        replacement: str | None = None,
    ) -> None:
        self._strip = _prefix("strip_prefix", strip_prefix)
        add = _prefix("add_prefix", add_prefix)
        self._add = None if add is None else add.rstrip(b"/")
        if (pattern is None) != (replacement is None):
            raise ValueError("rewrite: give pattern and replacement together")
        self._pattern = None
        self._replacement = b""
        if pattern is not None and replacement is not None:
            try:
                self._pattern = re.compile(pattern.encode())
                self._replacement = replacement.encode()
                _check_replacement(self._pattern, self._replacement)
            except (re.error, IndexError) as exc:  # IndexError: an unknown group name
                raise ValueError(
                    f"rewrite: pattern {pattern!r} with replacement {replacement!r}: {exc}"
                ) from None

    def target(self, path: bytes, query: bytes) -> bytes:
        """The rewritten request target: the path rewritten, the query as received."""
        path = self.apply(path)
        return path + b"?" + query if query else path

    def apply(self, path: bytes) -> bytes:
        """The rewritten path (raw bytes, no query)."""
        strip = self._strip
        if strip is not None and path.startswith(strip):
            path = path[len(strip) :]
            if path[:1] != b"/":
                path = b"/" + path
        if self._pattern is not None:
            path = self._pattern.sub(self._replacement, path, count=1) or b"/"
        add = self._add
        if add is not None:
            path = add + path if path[:1] == b"/" else add + b"/" + path
        return path


def _prefix(key: str, prefix: str | None) -> bytes | None:
    if prefix is None:
        return None
    if not prefix.startswith("/") or not prefix.isascii():
        raise ValueError(
            f"rewrite: {key} {prefix!r} must start with '/' and be ASCII (percent-encode the rest)"
        )
    return prefix.encode("ascii")


def _check_replacement(pattern: re.Pattern[bytes], replacement: bytes) -> None:
    """Raise now (re.error, or IndexError for an unknown group name) for a replacement the
    pattern cannot fill, instead of on the first request the pattern matches.

    The probe has the pattern's groups (same numbers, same names), each matching the empty
    string, so substituting into b"" expands the replacement exactly once.
    """
    names = {index: name for name, index in pattern.groupindex.items()}
    groups = b"".join(
        b"(?P<%s>)" % names[index].encode() if index in names else b"()"
        for index in range(1, pattern.groups + 1)
    )
    re.compile(groups).sub(replacement, b"", count=1)
