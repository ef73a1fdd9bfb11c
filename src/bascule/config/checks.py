"""Rules that span sections: names that must be unique, references that must resolve, and
warnings about config that is valid but probably not what the author meant.

They run on whatever part of the config validated (`Sections`), so a file with a typo in
one route still gets its broken references reported in the same run.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bascule.config.document import Document, Loc
from bascule.config.listener import Listener
from bascule.config.messages import did_you_mean
from bascule.config.model import Config
from bascule.config.problem import Problem
from bascule.config.route import Match, Route
from bascule.config.tcp_rules import tcp_problems, tcp_upstreams
from bascule.config.upstream import Upstream
from bascule.config.upstream_rules import upstream_problems

__all__ = ["Findings", "Sections", "check"]

_ROUTED = ("http", "https")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Sections:
    """The named sections by position; None marks an entry that failed validation.

    Upstream names are all known even when an upstream is invalid (they are the keys); a
    failed listener's name is not, so "unknown listener" is only reported when every
    listener validated.
    """

    listeners: Sequence[Listener | None]
    routes: Sequence[Route | None]
    upstreams: dict[str, Upstream | None]

    @classmethod
    def of(cls, config: Config) -> "Sections":
        return cls(config.listeners, config.routes, dict(config.upstreams))

    @property
    def listeners_known(self) -> bool:
        return None not in self.listeners

    @property
    def complete(self) -> bool:
        return (
            self.listeners_known and None not in self.routes and None not in self.upstreams.values()
        )


@dataclass(frozen=True)
class Findings:
    errors: list[Problem]
    warnings: list[Problem]


def check(sections: Sections, doc: Document) -> Findings:
    """All cross-section errors; warnings only for a config that is otherwise sound."""
    errors = [
        *_unique_names(sections, doc),
        *_unique_binds(sections, doc),
        *_listener_rules(sections, doc),
        *_route_references(sections, doc),
        *_balancing_rules(sections, doc),
        *tcp_problems(sections.listeners, sections.routes, sections.upstreams, doc),
    ]
    warnings: list[Problem] = []
    if sections.complete and not errors:
        warnings = [*_unused_upstreams(sections, doc), *_shadowed_routes(sections, doc)]
    return Findings(errors, sorted(warnings, key=lambda problem: problem.sort_key))


def _valid(items: Sequence[_T | None]) -> Iterator[tuple[int, _T]]:
    return ((index, item) for index, item in enumerate(items) if item is not None)


def _unique_names(sections: Sections, doc: Document) -> Iterator[Problem]:
    names = {
        "listeners": [None if item is None else item.name for item in sections.listeners],
        "routes": [None if item is None else item.name for item in sections.routes],
    }
    for section, items in names.items():
        first: dict[str, int] = {}
        for index, name in _valid(items):
            if name in first:
                where = (section, first[name])
                yield doc.problem(
                    (section, index, "name"),
                    f"{section[:-1]} name {name!r} is already used by "
                    f"{section}[{first[name]}] (line {doc.line(where)})",
                    "give each one a different name",
                )
            else:
                first[name] = index


def _unique_binds(sections: Sections, doc: Document) -> Iterator[Problem]:
    first: dict[tuple[str, int], Listener] = {}
    for index, listener in _valid(sections.listeners):
        key = (listener.bind.host, listener.bind.port)
        if key in first:
            yield doc.problem(
                ("listeners", index, "bind"),
                f"listener {listener.name!r} binds {listener.bind}, "
                f"which listener {first[key].name!r} already binds",
                "each listener needs its own host:port",
            )
        else:
            first[key] = listener


def _listener_rules(sections: Sections, doc: Document) -> Iterator[Problem]:
    for index, listener in _valid(sections.listeners):
        loc: Loc = ("listeners", index)
        # tcp listeners' own rules are in tcp_rules
        if listener.protocol != "tcp" and listener.upstream is not None:
            yield doc.problem(
                (*loc, "upstream"),
                f"{listener.protocol} listeners send requests through routes, not straight "
                "to an upstream",
                "remove `upstream` and add a route, or use `protocol: tcp`",
            )
        if listener.protocol == "https" and listener.tls is None:
            yield doc.problem(
                loc,
                f"https listener {listener.name!r} needs `tls` with at least one certificate",
            )
        if listener.protocol != "https" and listener.tls is not None:
            yield doc.problem(
                (*loc, "tls"),
                f"`tls` only applies to https listeners; this one is {listener.protocol}",
                "set `protocol: https` or remove `tls`",
            )
        if listener.protocol != "https" and listener.hsts is not None:
            yield doc.problem(
                (*loc, "hsts"),
                f"`hsts` only applies to https listeners; this one is {listener.protocol}",
                "browsers ignore Strict-Transport-Security over plain http; remove it",
            )
        if listener.protocol != "http" and listener.redirect_https is not None:
            yield doc.problem(
                (*loc, "redirect_https"),
                f"`redirect_https` only applies to http listeners; this one is {listener.protocol}",
                "remove it",
            )


def _route_references(sections: Sections, doc: Document) -> Iterator[Problem]:
    listeners = {listener.name: listener for _, listener in _valid(sections.listeners)}
    for index, route in _valid(sections.routes):
        if route.upstream is not None and route.upstream not in sections.upstreams:
            yield doc.problem(
                ("routes", index, "upstream"),
                f"route {route.name!r} names upstream {route.upstream!r}, which is not defined",
                did_you_mean(route.upstream, sections.upstreams),
            )
        for position, name in enumerate(route.listeners or ()):
            loc: Loc = ("routes", index, "listeners", position)
            listener = listeners.get(name)
            if listener is None and sections.listeners_known:
                yield doc.problem(
                    loc, f"no listener is named {name!r}", did_you_mean(name, listeners)
                )
            elif listener is not None and listener.protocol not in _ROUTED:
                yield doc.problem(
                    loc,
                    f"{name!r} is a tcp listener; tcp listeners pipe bytes and have no routes",
                )


def _balancing_rules(sections: Sections, doc: Document) -> Iterator[Problem]:
    for name, upstream in sections.upstreams.items():
        if upstream is not None:
            yield from upstream_problems(name, upstream, doc)


def _unused_upstreams(sections: Sections, doc: Document) -> Iterator[Problem]:
    used = {route.upstream for _, route in _valid(sections.routes)}
    used |= {listener.upstream for _, listener in _valid(sections.listeners)}
    used |= set(tcp_upstreams(sections.listeners))
    for name in sections.upstreams:
        if name not in used:
            yield doc.problem(
                ("upstreams", name),
                f"upstream {name!r} is not used by any route or listener",
                "remove it, or point a route at it",
                at_key=True,
            )


def _shadowed_routes(sections: Sections, doc: Document) -> Iterator[Problem]:
    http_names = {
        listener.name for _, listener in _valid(sections.listeners) if listener.protocol in _ROUTED
    }
    routes = list(_valid(sections.routes))
    for position, (later_index, later) in enumerate(routes):
        for earlier_index, earlier in routes[:position]:
            if _covers(earlier, later, http_names):
                yield doc.problem(
                    ("routes", later_index),
                    f"route {later.name!r} (line {doc.line(('routes', later_index))}) never "
                    f"matches: route {earlier.name!r} (line "
                    f"{doc.line(('routes', earlier_index))}) comes first and takes every "
                    "request it would",
                    f"move {later.name!r} above {earlier.name!r}, or narrow {earlier.name!r}",
                )
                break


def _covers(earlier: Route, later: Route, http_names: set[str]) -> bool:
    """True when every request `later` matches is matched by `earlier` first."""
    earlier_listeners = set(earlier.listeners or http_names)
    later_listeners = set(later.listeners or http_names)
    return (
        later_listeners <= earlier_listeners
        and _hosts_cover(earlier.match, later.match)
        and _paths_cover(earlier.match, later.match)
        and (
            earlier.match.methods is None
            or (
                later.match.methods is not None
                and set(later.match.methods) <= set(earlier.match.methods)
            )
        )
        and _headers_cover(earlier.match, later.match)
    )


def _hosts_cover(earlier: Match, later: Match) -> bool:
    if earlier.host is None:
        return True
    if later.host is None:
        return False
    return all(any(_host_covers(a, b) for a in earlier.host) for b in later.host)


def _host_covers(pattern: str, host: str) -> bool:
    """Whether every name `host` (exact or wildcard) matches is matched by `pattern`."""
    if pattern == host:
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


def _paths_cover(earlier: Match, later: Match) -> bool:
    if earlier.path_exact is not None:
        return later.path_exact == earlier.path_exact
    if earlier.path_regex is not None:
        return later.path_regex == earlier.path_regex
    if earlier.path is None or earlier.path == "/":
        return True  # every request path starts with "/"
    later_path = later.path if later.path is not None else later.path_exact
    return later_path is not None and later_path.startswith(earlier.path)


def _headers_cover(earlier: Match, later: Match) -> bool:
    if not earlier.headers:
        return True
    later_headers = {name.lower(): value for name, value in (later.headers or {}).items()}
    return all(later_headers.get(name.lower()) == value for name, value in earlier.headers.items())
