"""Rules between an upstream's balancing keys: each key belongs to some algorithms, some
algorithms need a key, and geo's regions must refer to each other.

They run with the cross-section checks, on upstreams that validated, so each error points
at the exact key to change. An option that the chosen algorithm would ignore is an error,
not a silent no-op: an operator who wrote `bounded_load` expects it to do something.
"""

import ipaddress
from collections.abc import Iterator

from bascule.config.document import Document, Loc
from bascule.config.messages import did_you_mean
from bascule.config.problem import Problem
from bascule.config.upstream import Upstream

__all__ = ["upstream_problems"]

# Which algorithms each optional key applies to.
_APPLIES_TO: dict[str, tuple[str, ...]] = {
    "key": ("hash",),
    "bounded_load": ("hash", "ip_hash"),
    "load_header": ("least_load",),
    "load_max_age": ("least_load",),
    "slow_start": (
        "round_robin",
        "random",
        "least_conn",
        "power_of_two",
        "least_time",
        "geo",
    ),
    "geo": ("geo",),
}
_TARGET_APPLIES_TO: dict[str, tuple[str, ...]] = {
    "priority": ("least_load",),
    "max_load": ("least_load",),
}


def upstream_problems(name: str, upstream: Upstream, doc: Document) -> Iterator[Problem]:
    base: Loc = ("upstreams", name)
    balance = upstream.balance
    for key, algorithms in _APPLIES_TO.items():
        if key in upstream.model_fields_set and balance not in algorithms:
            yield doc.problem(
                (*base, key),
                f"`{key}` does not apply to balance: {balance}; it is for {_either(algorithms)}",
                _fix(key, balance, algorithms),
                at_key=True,
            )
    for index, target in enumerate(upstream.targets):
        for key, algorithms in _TARGET_APPLIES_TO.items():
            if key in target.model_fields_set and balance not in algorithms:
                yield doc.problem(
                    (*base, "targets", index, key),
                    f"a target's `{key}` does not apply to balance: {balance}; it is for "
                    f"{_either(algorithms)}",
                    f"remove it, or set balance: {algorithms[0]}",
                    at_key=True,
                )
    if balance == "hash" and upstream.key is None:
        yield doc.problem(
            (*base, "balance"),
            "balance: hash needs a `key`: the request value to hash",
            "add one such as `key: $cookie_session`, `key: $header_x_user` or `key: $uri`",
        )
    if balance == "geo":
        yield from _geo_problems(base, upstream, doc)


def _geo_problems(base: Loc, upstream: Upstream, doc: Document) -> Iterator[Problem]:
    geo = upstream.geo
    if geo is None:
        yield doc.problem(
            (*base, "balance"),
            "balance: geo needs a `geo` block saying where clients are",
            "add `geo: {client_regions: {eu-west: [10.1.0.0/16]}}` or `geo: {mmdb: <file>}`",
        )
        return
    target_regions = sorted({t.region for t in upstream.targets if t.region is not None})
    if not target_regions:
        yield doc.problem(
            (*base, "targets"),
            "balance: geo needs targets with a `region`, and none has one",
            "add `region: eu-west` (for example) to each target",
        )
    if not geo.client_regions and geo.mmdb is None:
        yield doc.problem(
            (*base, "geo"),
            "geo needs `client_regions`, `mmdb` or both to know where clients are",
        )
    seen: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}
    for region, cidrs in geo.client_regions.items():
        for position, cidr in enumerate(cidrs):
            network = ipaddress.ip_network(cidr)
            if network in seen:
                yield doc.problem(
                    (*base, "geo", "client_regions", region, position),
                    f"{network} is already in region {seen[network]!r}; a network can be in "
                    "one region only",
                    "remove one of them, or use a longer prefix for the exception",
                )
            else:
                seen[network] = region
    client_regions = set(geo.client_regions) | set(target_regions)
    open_ended = False  # database values are region names: any name may be a client region
    if geo.mmdb is not None:
        if geo.mmdb.regions is None:
            open_ended = True
        else:
            client_regions |= set(geo.mmdb.regions)
    for region, order in geo.fallback.items():
        if not open_ended and region not in client_regions:
            yield doc.problem(
                (*base, "geo", "fallback", region),
                f"no client or target is in region {region!r}, so this fallback never applies",
                did_you_mean(region, client_regions)
                or f"known regions: {', '.join(sorted(client_regions))}",
                at_key=True,
            )
        for position, other in enumerate(order):
            if other not in target_regions:
                yield doc.problem(
                    (*base, "geo", "fallback", region, position),
                    f"no target is in region {other!r}",
                    did_you_mean(other, target_regions)
                    or f"target regions: {', '.join(target_regions) or 'none'}",
                )


def _either(algorithms: tuple[str, ...]) -> str:
    if len(algorithms) == 1:
        return f"balance: {algorithms[0]}"
    return "balance: " + ", ".join(algorithms[:-1]) + f" and {algorithms[-1]}"


def _fix(key: str, balance: str, algorithms: tuple[str, ...]) -> str:
    if key == "key" and balance == "ip_hash":
        return "ip_hash always hashes the client address: remove `key`, or use balance: hash"
    if key == "slow_start" and balance in ("hash", "ip_hash"):
        return "hashing keeps clients on their target; `bounded_load` protects one that returns"
    if key == "slow_start":
        return "remove it: load reports already steer traffic away from a busy target"
    return f"remove it, or set balance: {algorithms[0]}"
