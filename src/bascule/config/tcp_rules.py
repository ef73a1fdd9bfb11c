"""Rules for tcp listeners and the upstreams they pipe to, run with the cross-section checks.

1. A key only tcp listeners read is an error on an http or https listener, and an HTTP key
   (`limits`, the header, keepalive and body timeouts) is one on a tcp listener: an
   operator who wrote it expects it to do something.
2. A tcp listener needs `upstream`, `sni_routes` or both, and every upstream they name
   must exist.
3. `proxy_protocol: accept` needs `trusted_proxies`: only those peers may send the header.
4. An upstream a tcp listener pipes to balances on what a connection has, its client
   address: `hash` only on `$remote_addr` (and literal text), no sticky sessions.
5. An upstream's `proxy_protocol` is sent on tcp connections only: one that only routes
   use would never send it.
"""

from collections.abc import Iterator, Mapping, Sequence

from bascule.config.document import Document, Loc
from bascule.config.hash_key import parse_hash_key
from bascule.config.listener import Listener
from bascule.config.messages import did_you_mean
from bascule.config.problem import Problem
from bascule.config.route import Route
from bascule.config.upstream import Upstream

__all__ = ["tcp_problems", "tcp_upstreams"]

_TCP_ONLY = ("max_connections", "proxy_protocol", "sni_routes")
_TCP_ONLY_TIMEOUTS = ("idle", "preread")
_HTTP_TIMEOUTS = ("header", "keepalive", "body")


def tcp_upstreams(listeners: Sequence[Listener | None]) -> dict[str, tuple[int, Loc]]:
    """Each upstream a tcp listener pipes to, with the first listener (index) and the key
    that names it."""
    used: dict[str, tuple[int, Loc]] = {}
    for index, listener in enumerate(listeners):
        if listener is None or listener.protocol != "tcp":
            continue
        if listener.upstream is not None:
            used.setdefault(listener.upstream, (index, ("listeners", index, "upstream")))
        for name, upstream in listener.sni_routes.items():
            used.setdefault(upstream, (index, ("listeners", index, "sni_routes", name)))
    return used


def tcp_problems(
    listeners: Sequence[Listener | None],
    routes: Sequence[Route | None],
    upstreams: Mapping[str, Upstream | None],
    doc: Document,
) -> Iterator[Problem]:
    trusted = isinstance(doc.data, dict) and bool(doc.data.get("trusted_proxies"))
    for index, listener in enumerate(listeners):
        if listener is None:
            continue
        if listener.protocol == "tcp":
            yield from _tcp_listener(index, listener, upstreams, trusted, doc)
        else:
            yield from _not_tcp(index, listener, doc)
    used = tcp_upstreams(listeners)
    for name, (index, _) in used.items():
        upstream = upstreams.get(name)
        if upstream is not None:
            listener = listeners[index]
            assert listener is not None
            yield from _tcp_upstream(name, upstream, listener.name, doc)
    routed = {route.upstream for route in routes if route is not None}
    for name, upstream in upstreams.items():
        if (
            upstream is not None
            and upstream.proxy_protocol is not None
            and name not in used
            and name in routed
        ):
            yield doc.problem(
                ("upstreams", name, "proxy_protocol"),
                f"upstream {name!r} is used by routes only, and `proxy_protocol` is sent on "
                "tcp listeners' connections only",
                "remove it, or point a tcp listener at this upstream",
                at_key=True,
            )


def _tcp_listener(
    index: int,
    listener: Listener,
    upstreams: Mapping[str, Upstream | None],
    trusted: bool,
    doc: Document,
) -> Iterator[Problem]:
    loc: Loc = ("listeners", index)
    if listener.upstream is None and not listener.sni_routes:
        yield doc.problem(
            loc,
            f"tcp listener {listener.name!r} needs an upstream to send connections to",
            "add `upstream: <name>` (or `sni_routes` to choose one by TLS server name)",
        )
    elif listener.upstream is not None and listener.upstream not in upstreams:
        yield doc.problem(
            (*loc, "upstream"),
            f"no upstream is named {listener.upstream!r}",
            did_you_mean(listener.upstream, upstreams),
        )
    for server_name, upstream in listener.sni_routes.items():
        if upstream not in upstreams:
            yield doc.problem(
                (*loc, "sni_routes", server_name),
                f"no upstream is named {upstream!r}",
                did_you_mean(upstream, upstreams),
            )
    if listener.proxy_protocol is not None and not trusted:
        yield doc.problem(
            (*loc, "proxy_protocol"),
            "proxy_protocol: accept takes connections from trusted_proxies only, and there "
            "are none: every connection would be refused",
            "list the balancers in front of Bascule in top-level `trusted_proxies`",
        )
    keys: list[Loc] = [("limits",), *(("timeouts", k) for k in _HTTP_TIMEOUTS)]
    for key in keys:
        if _given(listener, key):
            yield doc.problem(
                (*loc, *key),
                f"`{_dotted(key)}` applies to HTTP requests; tcp listeners pipe bytes",
                "remove it; tcp listeners have timeouts.idle and timeouts.preread",
                at_key=True,
            )


def _not_tcp(index: int, listener: Listener, doc: Document) -> Iterator[Problem]:
    loc: Loc = ("listeners", index)
    keys: list[Loc] = [(k,) for k in _TCP_ONLY] + [("timeouts", k) for k in _TCP_ONLY_TIMEOUTS]
    for key in keys:
        if _given(listener, key):
            yield doc.problem(
                (*loc, *key),
                f"`{_dotted(key)}` applies to tcp listeners; this one is {listener.protocol}",
                "remove it, or set `protocol: tcp`",
                at_key=True,
            )


def _dotted(key: Loc) -> str:
    return ".".join(str(part) for part in key)


def _given(listener: Listener, key: Loc) -> bool:
    """Whether the key at `key` (below the listener) was written in the file."""
    model: object = listener
    for part in key[:-1]:
        if part not in getattr(model, "model_fields_set", ()):
            return False
        model = getattr(model, str(part))
    return key[-1] in getattr(model, "model_fields_set", ())


def _tcp_upstream(name: str, upstream: Upstream, listener: str, doc: Document) -> Iterator[Problem]:
    base: Loc = ("upstreams", name)
    if upstream.key is not None:
        kinds = {
            part.kind for part in parse_hash_key(upstream.key).parts if not isinstance(part, bytes)
        }
        if kinds - {"remote_addr"}:
            yield doc.problem(
                (*base, "key"),
                f"tcp listener {listener!r} pipes to upstream {name!r}, and a tcp connection "
                "has no URI, headers, cookies or query arguments to hash",
                "hash on the client address: `key: $remote_addr`, or `balance: ip_hash`",
            )
    if upstream.sticky is not None:
        yield doc.problem(
            (*base, "sticky"),
            f"tcp listener {listener!r} pipes to upstream {name!r}, and sticky sessions need "
            "HTTP (cookies, headers)",
            "remove it; `balance: ip_hash` (or hash with `key: $remote_addr`) keeps a client "
            "on one target",
            at_key=True,
        )
