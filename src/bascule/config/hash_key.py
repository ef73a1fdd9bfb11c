"""The `key:` template of a `balance: hash` upstream: what to hash, from the request.

A template is literal text and variables: `$remote_addr`, `$uri`, `$header_<name>`,
`$cookie_<name>` and `$arg_<name>` (`$header_x_user` is the header X-User: underscores
mean dashes, and the case is ignored). `${name}` delimits a variable followed by a letter,
digit or underscore ("${cookie_sid}x"). It is checked when the config loads and parsed
once; the proxy evaluates the parts for each request and hashes the bytes.
"""

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["HashKey", "KeyVariable", "parse_hash_key"]

VARIABLES = ("$remote_addr", "$uri", "$header_<name>", "$cookie_<name>", "$arg_<name>")
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z0-9_]*))")
_NAMED = re.compile(r"(?P<kind>header|cookie|arg)_(?P<name>[A-Za-z0-9_.\-]+)")

VariableKind = Literal["remote_addr", "uri", "header", "cookie", "arg"]


@dataclass(frozen=True, slots=True)
class KeyVariable:
    """One variable: `name` is the header name (lower case, dashes), cookie or argument
    name as bytes, and b"" for remote_addr and uri."""

    kind: VariableKind
    name: bytes = b""


@dataclass(frozen=True, slots=True)
class HashKey:
    """A parsed template: literal bytes and variables, in order. A request's key is their
    concatenation, a missing header, cookie or argument contributing nothing."""

    parts: tuple[bytes | KeyVariable, ...]


def parse_hash_key(template: str) -> HashKey:
    """Parse and check a template; raises ValueError naming what is wrong and what is valid."""
    if not template:
        raise ValueError(f"the key is empty; use variables such as {', '.join(VARIABLES)}")
    parts: list[bytes | KeyVariable] = []
    position = 0
    for match in _VARIABLE.finditer(template):
        if match.start() > position:
            parts.append(template[position : match.start()].encode())
        braced, bare = match.group("braced"), match.group("bare")
        if bare == "" and template.startswith("${", match.start()):
            raise ValueError(f"an unclosed ${{ in the key {template!r}; write ${{name}}")
        parts.append(_variable(braced if braced is not None else bare, template))
        position = match.end()
    if position < len(template):
        parts.append(template[position:].encode())
    return HashKey(tuple(parts))


def _variable(name: str, template: str) -> KeyVariable:
    if name == "remote_addr":
        return KeyVariable("remote_addr")
    if name == "uri":
        return KeyVariable("uri")
    named = _NAMED.fullmatch(name)
    if named is None:
        shown = f"${name}" if name else "a bare $"
        raise ValueError(
            f"unknown variable {shown} in the key {template!r}; use {', '.join(VARIABLES)}"
        )
    value = named.group("name")
    kind = named.group("kind")
    if kind == "header":
        return KeyVariable("header", value.replace("_", "-").lower().encode())
    if kind == "cookie":
        return KeyVariable("cookie", value.encode())
    return KeyVariable("arg", value.encode())
