"""Turn a validated config into the engine's objects: upstreams, routers, route plans."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bascule import config as cfg
from bascule.balancing import BalancerSettings
from bascule.filters.header_edits import HeaderEdits
from bascule.filters.path_rewrite import PathRewrite
from bascule.filters.request_key import RequestKey
from bascule.filters.sticky import (
    Affinity,
    CookieAffinity,
    HashAffinity,
    LearnedAffinity,
    LearnedSessions,
    StickyCookie,
    load_secret,
)
from bascule.http.client_address import TrustedProxies
from bascule.proxy.listener_context import ListenerContext
from bascule.proxy.route_plan import RoutePlan
from bascule.proxy.selection import Selection
from bascule.proxy.upstream_connection import UpstreamConnection
from bascule.routing.actions import Action, ProxyTo, Redirect, Respond
from bascule.routing.route import Route
from bascule.routing.router import Router
from bascule.telemetry.access_log import AccessLog
from bascule.upstream.connection_pool import ConnectionPool
from bascule.upstream.target import Target
from bascule.upstream.upstream import Upstream


def build_upstreams(config: cfg.Config) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = {}
    for name, spec in config.upstreams.items():
        targets = [
            Target(
                t.address.host,
                t.address.port,
                t.weight,
                t.region,
                priority=t.priority,
                max_load=t.max_load,
            )
            for t in spec.targets
        ]
        upstream = Upstream(
            name,
            targets,
            BalancerSettings.from_config(spec),
            connect_timeout=spec.timeouts.connect,
            read_timeout=spec.timeouts.read,
            send_timeout=spec.timeouts.send,
            load_header=spec.load_header.lower().encode() if spec.balance == "least_load" else None,
            sticky=spec.sticky is not None,
        )
        for target in targets:
            target.pool = ConnectionPool(
                target,
                lambda upstream=upstream: UpstreamConnection(upstream),  # type: ignore[misc]
                max_idle=spec.keepalive.max_idle,
                idle_timeout=spec.keepalive.idle_timeout,
                connect_timeout=spec.timeouts.connect,
            )
        upstreams[name] = upstream
    return upstreams


def build_selections(config: cfg.Config, upstreams: dict[str, Upstream]) -> dict[str, Selection]:
    """Per upstream with a hash key or sticky sessions, what requests tell its balancer."""
    selections = {}
    for name, spec in config.upstreams.items():
        key = spec.hash_key
        try:
            affinity = _affinity(spec.sticky, upstreams[name].targets, config.state_dir)
        except OSError as exc:
            raise OSError(f"upstream {name}: the sticky cookie secret: {exc}") from exc
        if key is not None or affinity is not None:
            selections[name] = Selection(RequestKey(key) if key is not None else None, affinity)
    return selections


def _affinity(
    sticky: cfg.Sticky | None, targets: Sequence[Target], state_dir: str
) -> Affinity[Target] | None:
    if sticky is None:
        return None
    if sticky.cookie is not None:
        c = sticky.cookie
        cookie = StickyCookie(
            c.name,
            load_secret(c.secret_file, Path(state_dir)),
            targets,
            ttl=c.ttl,
            secure=c.secure,
            http_only=c.http_only,
            same_site=c.same_site.capitalize() if c.same_site is not None else None,
            path=c.path,
        )
        return CookieAffinity(cookie)
    if sticky.learn is not None:
        return LearnedAffinity(
            sticky.learn.cookie, LearnedSessions(sticky.learn.ttl, sticky.learn.max_sessions)
        )
    header = sticky.header.lower().encode() if sticky.header is not None else None
    return HashAffinity(targets, header)


def _action(spec: cfg.Route) -> Action:
    if spec.redirect is not None:
        return Redirect(spec.redirect.to, spec.redirect.status)
    if spec.respond is not None:
        r = spec.respond
        return Respond(
            r.status,
            r.body.encode(),
            r.content_type.encode(),
            tuple((k.encode(), v.encode()) for k, v in r.headers.items()),
        )
    assert spec.upstream is not None
    return ProxyTo(spec.upstream)


def build_route(spec: cfg.Route) -> Route:
    match = spec.match
    hosts = [match.host] if isinstance(match.host, str) else match.host
    return Route(
        spec.name,
        _action(spec),
        hosts=hosts,
        path=match.path,
        path_exact=match.path_exact,
        path_regex=match.path_regex,
        methods=match.methods,
        headers=match.headers,
        listeners=spec.listeners,
        preserve_host=spec.preserve_host,
    )


def _edits(spec: cfg.HeaderEdits) -> HeaderEdits:
    return HeaderEdits(set=spec.set, add=spec.add, remove=spec.remove)


def build_plan(
    route: Route,
    spec: cfg.Route,
    upstreams: dict[str, Upstream],
    selections: dict[str, Selection],
) -> RoutePlan:
    rewrite = None
    if spec.rewrite is not None:
        replace = spec.rewrite.replace
        rewrite = PathRewrite(
            strip_prefix=spec.rewrite.strip_prefix,
            add_prefix=spec.rewrite.add_prefix,
            pattern=replace.pattern if replace is not None else None,
            replacement=replace.with_ if replace is not None else None,
        )
    request = _edits(spec.headers.request)
    response = _edits(spec.headers.response)
    respond_lines = b""
    if isinstance(route.action, Respond):
        respond_lines = b"".join(b"\r\n" + k + b": " + v for k, v in route.action.headers)
    return RoutePlan(
        route,
        upstreams[spec.upstream] if spec.upstream is not None else None,
        rewrite=rewrite,
        request_added=request.lines(),
        request_remove=request.removal_pattern(),
        response_added=response.lines(),
        response_remove=response.removal_pattern(),
        respond_lines=respond_lines,
        selection=selections.get(spec.upstream) if spec.upstream is not None else None,
    )


def build_listener_context(
    listener: cfg.Listener,
    config: cfg.Config,
    upstreams: dict[str, Upstream],
    access_log: AccessLog,
    selections: dict[str, Selection],
) -> ListenerContext:
    routes: list[Route] = []
    plans: dict[Route, RoutePlan] = {}
    for spec in config.routes:
        route = build_route(spec)
        routes.append(route)
        plans[route] = build_plan(route, spec, upstreams, selections)
    router = Router(routes).for_listener(listener.name)
    return ListenerContext(
        listener.name,
        router,
        plans,
        access_log,
        scheme=b"https" if listener.protocol == "https" else b"http",
        header_timeout=listener.timeouts.header,
        keepalive_timeout=listener.timeouts.keepalive,
        body_timeout=listener.timeouts.body,
        max_header_bytes=listener.limits.max_header_bytes,
        max_uri_bytes=listener.limits.max_uri_bytes,
        max_body_bytes=listener.limits.max_body_bytes,
        trusted_proxies=TrustedProxies(config.trusted_proxies),
    )
