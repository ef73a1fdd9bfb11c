"""The running server: listen, serve until SIGTERM/SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sysconfig
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from bascule import config as cfg
from bascule.filters.cache import HttpCache
from bascule.net import tls
from bascule.net.listener import listen, raise_open_file_limit
from bascule.proxy import downstream
from bascule.proxy.downstream import DownstreamConnection
from bascule.proxy.listener_context import ListenerContext
from bascule.runtime.build import (
    build_caches,
    build_discovery,
    build_listener_context,
    build_selections,
    build_tcp_listener_context,
    build_upstreams,
)
from bascule.tcp import ClientConnection, TcpListenerContext
from bascule.telemetry.access_log import AccessLog
from bascule.telemetry.metrics import ListenerMetrics, WorkerMetrics
from bascule.telemetry.node import (
    SnapshotWriter,
    TelemetryDir,
    follow_controls,
    follow_purges,
)
from bascule.upstream.guard import Guards, Role
from bascule.upstream.health_board import HealthBoard
from bascule.upstream.upstream import Upstream

log = logging.getLogger("bascule")

ACCEPTED_SETTLE = 0.01  # seconds: a few loop turns after the listeners close


class Unsupported(Exception):
    """The config asks for something this release of Bascule does not do yet."""


def check_supported(config: cfg.Config) -> None:
    unusable = tls.problems(config)  # certificate, key and CA files, read as run reads them
    if unusable:
        raise Unsupported("\n  ".join(["TLS files that cannot be used:", *unusable]))
    if config.tracing is not None:
        try:
            import bascule.telemetry.otlp  # noqa: F401 - only: is the extra installed?
        except ImportError:
            raise Unsupported("tracing: needs OpenTelemetry: pip install 'bascule[otel]'") from None
    if config.admin is not None and config.admin.token_file is not None:
        from bascule.runtime.admin_process import read_token

        try:
            read_token(config.admin.token_file)
        except (OSError, ValueError) as exc:
            raise Unsupported(f"admin.token_file cannot be used: {exc}") from None


def _factory(ctx: ListenerContext | TcpListenerContext) -> Callable[[], asyncio.Protocol]:
    if isinstance(ctx, TcpListenerContext):
        return lambda: ClientConnection(ctx)
    return lambda: DownstreamConnection(ctx)


def request_path_build() -> str:
    """How the request path runs: compiled by mypyc (a wheel's build, see hatch_build.py)
    or as plain Python (an editable install, or a wheel built without a C compiler)."""
    compiled = (downstream.__file__ or "").endswith(sysconfig.get_config_var("EXT_SUFFIX"))
    return "compiled (mypyc)" if compiled else "pure Python"


async def serve(
    config: cfg.Config,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[list[tuple[str, str, int]]], None] | None = None,
    sockets: dict[str, socket.socket] | None = None,
    ssl_contexts: dict[str, ssl.SSLContext] | None = None,
    board: HealthBoard | None = None,
    telemetry: TelemetryDir | None = None,
) -> int:
    """Serve `config` until `stop` is set (or a signal arrives); returns the exit status.

    `on_ready` gets (listener name, host, port) for each bound listener once all accept.
    `sockets`: listening sockets by listener name, made by the supervisor and shared by
    its workers; without them each listener binds its own. `ssl_contexts`: the https
    listeners' TLS contexts, made by the supervisor before forking so that every worker
    shares one session-ticket key (a client resumes on whichever worker it reaches);
    without them they are made here. `board`: the node's shared health checks, run by
    the supervisor's health process; without it this process runs its own. `telemetry`:
    the node's telemetry directory, where this worker writes its metrics for the admin
    process to add up.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    check_supported(config)
    if config.admin is not None and telemetry is None:
        log.warning(
            "admin.bind %s: the admin listener is served by `bascule run`", config.admin.bind
        )
    open_files = raise_open_file_limit()
    log.info("open files limit: %d (about %d concurrent exchanges)", open_files, open_files // 2)
    log.info("request path: %s", request_path_build())
    spec_log = config.access_log
    access_log = AccessLog.open(spec_log.enabled, spec_log.path, spec_log.format)
    upstreams = build_upstreams(config)
    selections = build_selections(config, upstreams)
    caches = build_caches(config)
    discovery = build_discovery(config, upstreams)  # host-name and srv targets, from DNS
    metrics = WorkerMetrics()
    metrics.watch_upstreams(upstreams.values())
    # health checks (here, or followed on the board) and outlier detection
    role: Role = "alone" if board is None else "worker"
    guards = Guards.from_config(config, upstreams, role, board, metrics.ejected)
    spans = None
    if config.tracing is not None:
        from bascule.telemetry.otlp import OtlpSpans

        spans = OtlpSpans(config.tracing.otlp_endpoint, config.tracing.service_name)
    snapshots = SnapshotWriter(metrics, telemetry) if telemetry is not None else None
    following: list[asyncio.Task[None]] = []  # the admin process's purges and controls
    contexts: list[ListenerContext | TcpListenerContext] = []
    servers: list[asyncio.Server] = []
    bound: list[tuple[str, str, int]] = []
    try:
        await discovery.start()  # first lookups, within LOOKUP_TIMEOUT, before accepting
        guards.start()
        contexts_tls = tls.server_contexts(config) if ssl_contexts is None else ssl_contexts
        for spec in config.listeners:
            ctx = (
                build_tcp_listener_context(spec, config, upstreams, access_log)
                if spec.protocol == "tcp"
                else build_listener_context(spec, config, upstreams, access_log, selections, caches)
            )
            sock = sockets.get(spec.name) if sockets is not None else None
            server = await listen(
                _factory(ctx),
                spec.bind.host,
                spec.bind.port,
                sock=sock,
                ssl=contexts_tls.get(spec.name),
                handshake_timeout=spec.timeouts.header,
            )
            contexts.append(ctx)
            if isinstance(ctx, ListenerContext):
                ctx.spans = spans
            metrics.add(
                ctx.metrics if isinstance(ctx, ListenerContext) else ListenerMetrics(spec.name), ctx
            )
            servers.append(server)
            port = server.sockets[0].getsockname()[1]
            bound.append((spec.name, spec.bind.host, port))
            log.info(
                "listener %s: accepting %s on %s:%d", spec.name, spec.protocol, spec.bind.host, port
            )
        # Signals reach only the main thread; embedded elsewhere, `stop` is the way to stop.
        signals = (
            (signal.SIGTERM, signal.SIGINT)
            if threading.current_thread() is threading.main_thread()
            else ()
        )
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        if signals:
            loop.add_signal_handler(signal.SIGUSR1, access_log.reopen)  # after logrotate
        if snapshots is not None and telemetry is not None:
            snapshots.start()
            following.append(loop.create_task(follow_controls(telemetry, _controls(upstreams))))
            following.append(  # with no cache, a purge is done at once: nothing to remove
                loop.create_task(_follow_purges(telemetry, caches, metrics, snapshots))
            )
        if on_ready is not None:
            on_ready(bound)
        await stop.wait()
        for sig in (*signals, signal.SIGUSR1) if signals else ():
            loop.remove_signal_handler(sig)
        log.info("stopping: no new connections; draining for up to %gs", config.drain_timeout)
        await _drain(servers, contexts, config.drain_timeout)
    finally:
        for server in servers:
            server.close()
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        if snapshots is not None:
            await snapshots.stop()  # the last one: every request this worker answered
        await guards.stop()
        await discovery.stop()
        for upstream in upstreams.values():
            upstream.close()
        for cache in caches.values():
            await cache.close()
        if spans is not None:
            await asyncio.get_running_loop().run_in_executor(None, spans.close)  # flushes
        metrics.settle()  # the exchanges that ended since the last snapshot
        access_log.close()
    return 0


def _controls(upstreams: dict[str, Upstream]) -> Callable[[dict[str, dict[str, Any]]], None]:
    """How a worker applies the operator's runtime controls to its targets."""

    def apply(controls: dict[str, dict[str, Any]]) -> None:
        for upstream in upstreams.values():
            for target in upstream.targets:
                control = controls.get(f"{upstream.name}/{target.name}", {})
                hold = control.get("hold")
                target.state.set_available(hold != "draining", by="draining")
                target.state.set_available(hold != "operator", by="operator")
                weight = control.get("weight")
                if weight is not None and weight != target.weight:
                    upstream.reweigh(target, weight)

    return apply


def _follow_purges(
    telemetry: TelemetryDir | None,
    caches: dict[str, HttpCache],
    metrics: WorkerMetrics,
    snapshots: SnapshotWriter,
) -> Coroutine[Any, Any, None]:
    """Carry out the cache purges the admin process asks for, and report each at once."""
    assert telemetry is not None

    async def purge(prefix: str) -> int:
        return sum([await cache.purge(prefix) for cache in caches.values()])

    def done(number: int, keys: int) -> None:
        metrics.purged = (number, keys)
        snapshots.write()

    return follow_purges(telemetry, purge, done)


async def _drain(
    servers: list[asyncio.Server],
    contexts: list[ListenerContext | TcpListenerContext],
    drain_timeout: float,
) -> None:
    for server in servers:
        server.close()
    # Connections accepted just before the close are still being set up (their
    # connection_made is queued): let them register, or the drain would not wait for them.
    await asyncio.sleep(ACCEPTED_SETTLE)
    for ctx in contexts:
        ctx.drain()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(drain_timeout):
            for ctx in contexts:
                await ctx.drained.wait()
    left = [conn for ctx in contexts for conn in ctx.connections]
    if left:
        log.warning("drain timeout: closing %d connection(s) still busy", len(left))
        for conn in left:
            if conn.transport is not None:
                conn.transport.abort()
    await asyncio.sleep(0)  # let connection_lost callbacks run and log
