"""Routes: which requests they take (`Match`) and what they do with them (one action).

Routes are tried in file order and the first match wins. A route has exactly one action:
proxy to an `upstream`, `redirect`, or `respond`; `rewrite` and `headers` adjust the
request and response on the way through.
"""

import re
import string
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, model_validator

from bascule.config.cache import Cache
from bascule.config.compress import Compress
from bascule.config.section import Section
from bascule.config.syntax import (
    HeaderName,
    HeaderValue,
    Method,
    Name,
    UpgradeProtocol,
    check_host_pattern,
)

__all__ = [
    "HeaderEdits",
    "HeaderRules",
    "Match",
    "Redirect",
    "RegexReplace",
    "Respond",
    "Rewrite",
    "Route",
]

REDIRECT_PLACEHOLDERS = ("scheme", "host", "path", "query", "request_uri")


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None
    return pattern


def _absolute_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"a path must start with '/', got {path!r}")
    return path


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


Regex = Annotated[str, AfterValidator(_compile)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
HostPattern = Annotated[str, AfterValidator(check_host_pattern)]
HostPatterns = Annotated[
    Annotated[list[HostPattern], Field(min_length=1)] | None,
    BeforeValidator(_one_or_many),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "null"},
            ],
            "description": "Exact host (api.example.com) or wildcard (*.example.com), or a list.",
        }
    ),
]


class Match(Section):
    """The conditions a request must meet, all of them, for the route to take it.

    `host` is normalised to a lower-case list whichever way it was written. A wildcard
    `*.example.com` matches any name ending in `.example.com`, not `example.com` itself.
    """

    host: HostPatterns = None
    path: AbsolutePath | None = Field(default=None, description="Path prefix, e.g. /api/.")
    path_exact: AbsolutePath | None = Field(default=None, description="The whole path, exactly.")
    path_regex: Regex | None = Field(default=None, description="Python regex searched in the path.")
    methods: list[Method] | None = Field(default=None, min_length=1)
    headers: dict[HeaderName, HeaderValue] | None = Field(
        default=None, description="Header name (any case) to exact value; all must be present."
    )

    @model_validator(mode="after")
    def _one_path_rule(self) -> Self:
        given = [key for key in ("path", "path_exact", "path_regex") if getattr(self, key)]
        if len(given) > 1:
            raise ValueError(f"use only one of path, path_exact and path_regex (got {given})")
        return self


def _check_placeholders(target: str) -> str:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(target) if field is not None]
    except ValueError as error:
        raise ValueError(f"{error}; write a literal brace as {{{{ or }}}}") from None
    allowed = ", ".join(f"{{{name}}}" for name in REDIRECT_PLACEHOLDERS)
    for field in fields:
        if field not in REDIRECT_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{field}}}; use {allowed}")
    return target


class Redirect(Section):
    """Answer with a redirect; `to` may use {scheme} {host} {path} {query} {request_uri}."""

    to: Annotated[HeaderValue, AfterValidator(_check_placeholders)]
    status: Literal[301, 302, 303, 307, 308] = 302


class Respond(Section):
    """Answer directly, without an upstream (health endpoints, maintenance pages)."""

    # 1xx cannot end a request, so a fixed response starts at 200.
    status: int = Field(default=200, ge=200, le=599)
    body: str = ""
    content_type: HeaderValue = "text/plain; charset=utf-8"
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)


class RegexReplace(Section):
    """Rewrite the first match in the path: `re.sub(pattern, with, path, count=1)`."""

    pattern: Regex
    with_: str = Field(alias="with", description=r"Replacement; \1 or \g<name> for groups.")

    @model_validator(mode="after")
    def _valid_replacement(self) -> Self:
        try:
            re.compile(self.pattern).sub(self.with_, "")
        except (re.error, IndexError) as error:
            raise ValueError(f"bad replacement {self.with_!r}: {error}") from None
        return self


class Rewrite(Section):
    """Change the path sent upstream; applied as strip_prefix, then replace, then add_prefix."""

    strip_prefix: AbsolutePath | None = None
    add_prefix: AbsolutePath | None = None
    replace: RegexReplace | None = None

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if self.strip_prefix is None and self.add_prefix is None and self.replace is None:
            raise ValueError("set at least one of strip_prefix, add_prefix and replace")
        return self


class HeaderEdits(Section):
    """Header changes: `set` replaces, `add` appends, `remove` deletes (names in any case)."""

    set: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    add: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    remove: list[HeaderName] = Field(default_factory=list)


class HeaderRules(Section):
    """Header edits for the request going upstream and the response going back."""

    request: HeaderEdits = HeaderEdits()
    response: HeaderEdits = HeaderEdits()


ACTIONS = ("upstream", "redirect", "respond")


class Route(Section):
    """A match and one action; `listeners` None means every http and https listener."""

    name: Name
    listeners: list[str] | None = Field(default=None, min_length=1)
    match: Match = Match()
    upstream: str | None = None
    redirect: Redirect | None = None
    respond: Respond | None = None
    rewrite: Rewrite | None = None
    headers: HeaderRules = HeaderRules()
    cache: Cache | None = Field(
        default=None, description="Cache the upstream's responses; off when absent."
    )
    compress: Compress | None = Field(
        default=None, description="Compress the upstream's responses; off when absent."
    )
    preserve_host: bool = Field(
        default=True,
        description="True: send the client's Host upstream; false: the target's host:port.",
    )
    upgrades: list[UpgradeProtocol] = Field(
        default_factory=lambda: ["websocket"],
        description="Protocols a client may switch to through this route (Upgrade header); "
        "a request asking for any other (h2c, ...) is forwarded as a plain request.",
    )

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        given = [action for action in ACTIONS if getattr(self, action) is not None]
        if len(given) != 1:
            found = f"it has {' and '.join(given)}" if given else "it has none"
            raise ValueError(
                f"route {self.name!r} needs exactly one action of upstream, redirect "
                f"and respond; {found}"
            )
        for name in ("cache", "compress"):
            if getattr(self, name) is not None and self.upstream is None:
                raise ValueError(
                    f"route {self.name!r}: {name} applies to an upstream's responses; "
                    "this route has no upstream"
                )
        return self
