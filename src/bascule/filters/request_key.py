"""A request's hash key: the upstream's `key:` template evaluated on one request.

The template is parsed when the config loads (`bascule.config.hash_key`); here each
variable becomes a small function of (head, client address) once, so a request costs one
call per variable and a join.
"""

from __future__ import annotations

from collections.abc import Callable

from bascule.config.hash_key import HashKey, KeyVariable
from bascule.http.cookies import cookie_value, query_arg
from bascule.http.head import RequestHead

Lookup = Callable[[RequestHead, bytes], bytes | None]


class RequestKey:
    __slots__ = ("_parts",)

    def __init__(self, key: HashKey) -> None:
        self._parts: tuple[bytes | Lookup, ...] = tuple(
            p if isinstance(p, bytes) else _lookup(p) for p in key.parts
        )

    def __call__(self, head: RequestHead, client_ip: bytes) -> bytes | None:
        """The key's bytes, or None when no variable has a value: such requests are placed
        at random rather than all on one target."""
        found = False
        pieces = []
        for part in self._parts:
            if isinstance(part, bytes):
                pieces.append(part)
                continue
            value = part(head, client_ip)
            if value is not None:
                found = True
                pieces.append(value)
        return b"".join(pieces) if found else None


def _lookup(variable: KeyVariable) -> Lookup:
    name = variable.name
    if variable.kind == "remote_addr":
        return lambda head, client_ip: client_ip
    if variable.kind == "uri":
        return lambda head, client_ip: head.path
    if variable.kind == "header":
        return lambda head, client_ip: head.header(name)
    if variable.kind == "cookie":
        return lambda head, client_ip: cookie_value(head.header(b"cookie") or b"", name)
    return lambda head, client_ip: query_arg(head.query, name)
