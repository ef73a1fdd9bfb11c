"""Turn a validated config into the engine's objects: upstreams, routers, route plans."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from bascule import config as cfg
from bascule.balancing import BalancerSettings, TargetState
from bascule.filters.cache import HttpCache
from bascule.filters.cache_store import MemoryStore, Store
from bascule.filters.compress import Compression
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
from bascule.net import tls
from bascule.proxy.listener_context import ListenerContext
from bascule.proxy.route_plan import RoutePlan
from bascule.proxy.selection import Selection
from bascule.proxy.upstream_connection import UpstreamConnection
from bascule.routing.actions import Action, ProxyTo, Redirect, Respond
from bascule.routing.route import Route
from bascule.routing.router import Router
from bascule.tcp.context import TcpListenerContext, TcpPlan
from bascule.tcp.sni import ServerNames
from bascule.telemetry.access_log import AccessLog
from bascule.upstream.admission import Admission
from bascule.upstream.connection_pool import ConnectionPool
from bascule.upstream.discovery import (
    DiscoveredTarget,
    Discovery,
    DnsLookup,
    Endpoint,
    HostName,
    ServiceName,
    Source,
)
from bascule.upstream.retry_policy import RetryPolicy
from bascule.upstream.target import Target
from bascule.upstream.upstream import Upstream


def build_upstreams(config: cfg.Config) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = {}
    for name, spec in config.upstreams.items():
        tls_context = _tls(name, spec)
        # Host-name and srv targets join when discovery has looked them up (build_discovery).
        targets = [
            _target(t, t.address.host, t.address.port, t.weight)
            for t in spec.targets
            if t.address is not None and t.dns_name is None
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
            retry=RetryPolicy(spec.retries),
            total_timeout=spec.timeouts.total,
            admission=_admission(spec),
        )
        for target in targets:
            _attach_pool(target, upstream, spec, tls_context)
        upstreams[name] = upstream
    return upstreams


def _target(
    spec: cfg.Target,
    host: str,
    port: int,
    weight: int,
    *,
    hostname: str | None = None,
    backup: bool | None = None,
    state: TargetState | None = None,
) -> Target:
    """The target for one address of a config target: as written, or found in DNS (whose
    SRV priorities may make it a backup)."""
    make: Callable[..., Target] = (
        Target if hostname is None else partial(DiscoveredTarget, state=state, hostname=hostname)
    )
    return make(
        host,
        port,
        weight,
        spec.region,
        priority=spec.priority,
        max_load=spec.max_load,
        max_conns=spec.max_conns,
        backup=spec.backup if backup is None else backup,
    )


def _admission(spec: cfg.Upstream) -> Admission | None:
    """Limits per target and the queue, if any target has a limit."""
    if spec.max_conns is None and all(t.max_conns is None for t in spec.targets):
        return None
    return Admission(spec.max_pending, spec.queue_timeout)


def _tls(name: str, spec: cfg.Upstream) -> ssl.SSLContext | None:
    """The upstream's TLS context, read from its files now (so a reload reads them again)."""
    return tls.client_context(name, spec.tls) if spec.tls is not None else None


def _attach_pool(
    target: Target, upstream: Upstream, spec: cfg.Upstream, tls_context: ssl.SSLContext | None
) -> None:
    if target.max_conns is None:
        target.max_conns = spec.max_conns  # the upstream's limit for each of its targets
    # The name a TLS target is checked against: `sni`, else the DNS name it was found under.
    hostname = spec.tls.sni if spec.tls is not None else None
    target.pool = ConnectionPool(
        target,
        lambda: UpstreamConnection(upstream),
        max_idle=spec.keepalive.max_idle,
        idle_timeout=spec.keepalive.idle_timeout,
        connect_timeout=spec.timeouts.connect,
        tls=tls_context,
        server_hostname=hostname or getattr(target, "hostname", None),
    )


def build_discovery(config: cfg.Config, upstreams: dict[str, Upstream]) -> Discovery:
    """DNS discovery for each upstream with a host-name or srv target; `start` it."""
    discovery = Discovery()
    for name, spec in config.upstreams.items():
        if all(t.dns_name is None for t in spec.targets):
            continue
        entries: list[Endpoint | Source] = []
        for index, t in enumerate(spec.targets):
            if t.srv is not None:
                entries.append(ServiceName(t.srv, index, t.backup))
            elif t.dns_name is not None:
                assert t.address is not None
                entries.append(HostName(t.dns_name, t.address.port, t.weight, index, t.backup))
            else:
                assert t.address is not None
                address = t.address
                entries.append(
                    Endpoint(address.host, address.port, t.weight, index, backup=t.backup)
                )
        upstream = upstreams[name]
        tls_context = _tls(name, spec)

        def make(
            endpoint: Endpoint,
            up_since: float | None,
            upstream: Upstream = upstream,
            spec: cfg.Upstream = spec,
            tls_context: ssl.SSLContext | None = tls_context,
        ) -> Target:
            target = _target(
                spec.targets[endpoint.entry],
                endpoint.ip,
                endpoint.port,
                endpoint.weight,
                hostname=endpoint.hostname,
                backup=endpoint.backup,
                state=TargetState(up_since=up_since),
            )
            _attach_pool(target, upstream, spec, tls_context)
            return target

        lookup = DnsLookup([(r.host, r.port) for r in spec.resolvers])
        discovery.add(upstream, entries, make, lookup, resolve_every=spec.resolve_every)
    return discovery


def build_selections(config: cfg.Config, upstreams: dict[str, Upstream]) -> dict[str, Selection]:
    """Per upstream with a hash key or sticky sessions, what requests tell its balancer."""
    selections = {}
    for name, spec in config.upstreams.items():
        key = spec.hash_key
        sticky = spec.sticky
        secret = b""
        if sticky is not None and sticky.cookie is not None:
            try:
                secret = load_secret(sticky.cookie.secret_file, Path(config.state_dir))
            except OSError as exc:
                raise OSError(f"upstream {name}: the sticky cookie secret: {exc}") from exc
        upstream = upstreams[name]
        affinity = _affinity(sticky, upstream.targets, secret)
        if key is not None or affinity is not None:
            selection = Selection(RequestKey(key) if key is not None else None, affinity)
            selections[name] = selection
            if sticky is not None and sticky.learn is None:
                # Cookies and hash rings name the targets: remade when discovery changes them.
                upstream.watch_targets(_affinity_follower(selection, upstream, sticky, secret))
    return selections


def _affinity_follower(
    selection: Selection, upstream: Upstream, sticky: cfg.Sticky, secret: bytes
) -> Callable[[tuple[Target, ...], tuple[Target, ...]], None]:
    def follow(added: tuple[Target, ...], removed: tuple[Target, ...]) -> None:
        selection.affinity = _affinity(sticky, upstream.targets, secret)

    return follow


def _affinity(
    sticky: cfg.Sticky | None, targets: Sequence[Target], secret: bytes
) -> Affinity[Target] | None:
    if sticky is None:
        return None
    if sticky.cookie is not None:
        c = sticky.cookie
        cookie = StickyCookie(
            c.name,
            secret,
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


def _edits(spec: cfg.HeaderEdits, also_set: dict[str, str] | None = None) -> HeaderEdits:
    """The route's edits, plus `also_set` for each header the route does not edit itself."""
    to_set = spec.set
    if also_set:
        own = {name.lower() for name in (*spec.set, *spec.add, *spec.remove)}
        to_set = {k: v for k, v in also_set.items() if k.lower() not in own} | spec.set
    return HeaderEdits(set=to_set, add=spec.add, remove=spec.remove)


def build_caches(config: cfg.Config) -> dict[str, HttpCache]:
    """The cache of each route that has one, by route name: one per worker, shared by the
    worker's listeners."""
    caches = {}
    for spec in config.routes:
        settings = spec.cache
        if settings is None:
            continue
        store: Store
        if settings.store == "redis":
            from bascule.filters.cache_redis import RedisStore  # redis-py, only when used

            store = RedisStore(settings.redis.url, settings.redis.prefix, settings.redis.timeout)
        else:
            store = MemoryStore(settings.max_size)
        not_sent = _edits(spec.headers.request).removal_pattern(
            also=(b"if-none-match", b"if-modified-since")
        )
        assert not_sent is not None
        caches[spec.name] = HttpCache(
            store,
            max_object=settings.max_object,
            key_template=settings.key,
            collapse_timeout=settings.collapse_timeout,
            request_remove=not_sent,
        )
    return caches


def build_plan(
    route: Route,
    spec: cfg.Route,
    upstreams: dict[str, Upstream],
    selections: dict[str, Selection],
    response_set: dict[str, str] | None = None,
    cache: HttpCache | None = None,
) -> RoutePlan:
    """`response_set`: headers set on every response, unless the route edits them (HSTS)."""
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
    response = _edits(spec.headers.response, response_set)
    compression = None
    if spec.compress is not None:
        removed = response.removal_pattern(also=(b"content-length", b"etag"))
        assert removed is not None
        compression = Compression(
            spec.compress.algorithms,
            spec.compress.min_size,
            spec.compress.types,
            spec.compress.level.model_dump(),
            removed,
        )
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
        compression=compression,
        cache=cache,
        upgrades=frozenset(name.encode() for name in spec.upgrades),
    )


def build_listener_context(
    listener: cfg.Listener,
    config: cfg.Config,
    upstreams: dict[str, Upstream],
    access_log: AccessLog,
    selections: dict[str, Selection],
    caches: dict[str, HttpCache] | None = None,
) -> ListenerContext:
    routes: list[Route] = []
    plans: dict[Route, RoutePlan] = {}
    hsts = listener.hsts
    response_set = {"Strict-Transport-Security": hsts.header_value()} if hsts else None
    for spec in config.routes:
        route = build_route(spec)
        routes.append(route)
        cache = caches.get(spec.name) if caches is not None else None
        plans[route] = build_plan(route, spec, upstreams, selections, response_set, cache)
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
        redirect_https=listener.redirect_https.port if listener.redirect_https else None,
        client_certificates=listener.tls is not None and listener.tls.client_ca is not None,
        request_ids=config.request_ids,
    )


def build_tcp_listener_context(
    listener: cfg.Listener,
    config: cfg.Config,
    upstreams: dict[str, Upstream],
    access_log: AccessLog,
) -> TcpListenerContext:
    plans: dict[str, TcpPlan] = {}

    def plan(name: str) -> TcpPlan:
        found = plans.get(name)
        if found is None:
            spec = config.upstreams[name]
            version = spec.proxy_protocol
            found = plans[name] = TcpPlan(
                upstreams[name],
                proxy_protocol=0 if version is None else int(version[1:]),
                hash_key=spec.hash_key if spec.balance == "hash" else None,
            )
        return found

    sni = listener.sni_routes
    return TcpListenerContext(
        listener.name,
        plan(listener.upstream) if listener.upstream is not None else None,
        access_log,
        server_names=ServerNames({name: plan(up) for name, up in sni.items()}) if sni else None,
        accept_proxy_protocol=listener.proxy_protocol == "accept",
        trusted_proxies=TrustedProxies(config.trusted_proxies),
        idle_timeout=listener.timeouts.idle,
        preread_timeout=listener.timeouts.preread,
        max_connections=listener.max_connections,
    )
