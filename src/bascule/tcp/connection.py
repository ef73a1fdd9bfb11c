"""One tcp connection, from accept to close: the client side (`ClientConnection`, made by
the listener) and the target side (`TargetConnection`) of one byte pipe.

Rules:

1. Everything happens in Protocol callbacks; a task exists only while a connection to a
   target is being opened (its connect timeout, then failover to another target).
2. Bytes are forwarded as they arrive. When one side's transport buffers above its
   high-water mark (`pause_writing`), reading from the other side pauses until it drains
   (`resume_writing`): memory stays bounded whichever side is slow.
3. A FIN from one side is passed on as a FIN (`write_eof`) to the other, and the other
   direction keeps flowing until its own FIN. Both FINs, or either side closing or
   resetting, end the connection: both transports close (pending bytes are still sent).
4. No byte either way for the listener's `timeouts.idle` aborts both sides.
5. With `proxy_protocol: accept` or `sni_routes`, the first bytes are read before any
   target is chosen (within `timeouts.preread`): the PROXY header is taken off, and
   everything after it, the ClientHello included, is replayed to the target.
6. Input never raises out of a callback: bytes that are not a PROXY header or a
   ClientHello close the connection with a log line.
7. Each connection writes one access-log line, when its client side is gone; in-flight
   feedback (`TargetState.start` / `finish`) spans the target connection, so least_conn
   counts open connections.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from time import monotonic
from typing import cast

from bascule.proxy.errors import Source
from bascule.proxy.watchdog import Watchdog
from bascule.tcp import proxy_protocol
from bascule.tcp.context import TcpListenerContext, TcpPlan
from bascule.tcp.proxy_protocol import Address, ProxyHeaderError
from bascule.tcp.sni import NotTls, read_server_name
from bascule.telemetry.access_log import ConnectionRecord
from bascule.upstream.admission import Admission
from bascule.upstream.retry_policy import Kind
from bascule.upstream.target import Target

log = logging.getLogger("bascule.tcp")

# Where a connection is in its life.
_PREREAD = 0  # reading a PROXY header or a ClientHello; no target yet
_CONNECTING = 1  # opening a connection to a target; client bytes are held
_PIPING = 2  # bytes flow both ways
_CLOSED = 3  # ending: nothing more is forwarded

# Why reading from the client is paused; reading resumes when no reason is left.
_WAITING = 1  # no target connection yet
_TARGET_FULL = 2  # the target reads slower than the client sends


def _address(name: object) -> Address | None:
    """(ip, port) of a socket address; None for anything else (a Unix socket)."""
    if isinstance(name, tuple) and len(name) >= 2:
        return str(name[0]), int(name[1])
    return None


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_attempt_started",
        "_last",
        "_paused",
        "_proxied",
        "_task",
        "_wanted",
        "admitted",
        "bytes_in",
        "bytes_out",
        "chosen",
        "client",
        "client_eof",
        "client_ip",
        "closed_by",
        "connect_seconds",
        "counted",
        "ctx",
        "error",
        "error_source",
        "held",
        "local",
        "loop",
        "phase",
        "plan",
        "server_name",
        "started",
        "target",
        "target_eof",
        "transport",
        "watchdog",
    )

    def __init__(self, ctx: TcpListenerContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.target: TargetConnection | None = None
        self.phase = _PREREAD
        self.plan: TcpPlan | None = None
        self.client: Address | None = None  # the client (as a PROXY header names it)
        self.local: Address | None = None  # the address it connected to
        self.client_ip = b"-"
        self.server_name: str | None = None
        self.held = bytearray()  # client bytes read before a target is connected
        self.chosen: Target | None = None  # the target of the current or last attempt
        self.counted: Target | None = None  # its in-flight feedback is still open
        self.admitted: Target | None = None  # it counts this connection against max_conns
        self.started = monotonic()
        self.connect_seconds: float | None = None
        self.bytes_in = 0  # from the client (PROXY header excluded)
        self.bytes_out = 0  # from the target
        self.client_eof = False
        self.target_eof = False
        self.closed_by: str | None = None  # who ended it: client, target, idle_timeout
        self.error_source: Source | None = None
        self.error: str | None = None
        self._proxied = False
        self._wanted = 1  # preread bytes to wait for before parsing again
        self._paused = 0
        self._task: asyncio.Task[None] | None = None
        self._attempt_started = 0.0
        self._last = 0.0  # loop time bytes last moved
        self.watchdog = Watchdog(self.loop, self._on_timer)

    # -- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        ctx = self.ctx
        now = self._last = self.loop.time()
        peer = transport.get_extra_info("peername")
        self.client = _address(peer)
        self.local = _address(transport.get_extra_info("sockname"))
        self.client_ip = self.client[0].encode() if self.client is not None else b"-"
        if not ctx.admit(self, now):
            self._end(
                Source.DOWNSTREAM,
                f"the listener is at max_connections ({ctx.max_connections})",
                quiet=True,  # ctx logs these, a line per burst
            )
            return
        if ctx.accept_proxy_protocol and not ctx.trusted_proxies.trusts(self.client_ip):
            self._end(
                Source.DOWNSTREAM,
                f"peer {self.client_ip.decode()} is not in trusted_proxies, and this listener "
                "takes connections (with a PROXY header) from trusted proxies only",
            )
            return
        if ctx.prereads:
            self.watchdog.arm(now + ctx.preread_timeout)
            return
        assert ctx.plan is not None
        self._connect(ctx.plan)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == _PIPING:
            self.bytes_in += len(data)
            self._last = self.loop.time()
            target = self.target
            assert target is not None and target.transport is not None
            target.transport.write(data)
            return
        if phase == _CLOSED:
            return
        self.bytes_in += len(data)
        self.held += data
        if phase == _CONNECTING:
            self._pause(_WAITING)  # again: asked for in connection_made, it did not hold
            return
        if len(self.held) >= self._wanted:
            try:
                self._preread()
            except Exception:
                log.exception(
                    "tcp listener %s: internal error reading the first bytes of %s",
                    self.ctx.name,
                    self.client_ip.decode(),
                )
                self._end(Source.INTERNAL, "internal error while reading the first bytes")

    def eof_received(self) -> bool | None:
        self.client_eof = True
        phase = self.phase
        if phase == _PREREAD:
            self._end(
                Source.DOWNSTREAM, f"the client closed before its {self._awaited} was complete"
            )
            return None
        if self.closed_by is None:
            self.closed_by = "client"
        if phase == _PIPING:
            target = self.target
            if target is not None and target.transport is not None:
                target.transport.write_eof()  # after what is buffered
            if self.target_eof:
                self._close_both()
        # _CONNECTING: the FIN goes on once the held bytes have (see _pipe)
        return True  # half-closed: the answer may still come

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.watchdog.cancel()
        self.ctx.forget(self)
        if self.phase != _CLOSED:
            self.phase = _CLOSED
            if self.closed_by is None:
                self.closed_by = "client"
        if self._task is not None:
            self._task.cancel()  # still connecting: nobody is left to pipe to
            self._task = None
        target = self.target
        if target is not None and target.transport is not None:
            target.transport.close()
        self._log()

    def pause_writing(self) -> None:
        """The client reads slower than the target sends."""
        if self.target is not None:
            self.target.pause_reading()

    def resume_writing(self) -> None:
        if self.target is not None:
            self.target.resume_reading()

    # -- before a target: PROXY header, ClientHello ------------------------------------------

    @property
    def _awaited(self) -> str:
        if self.ctx.accept_proxy_protocol and not self._proxied:
            return "PROXY protocol header"
        return "TLS ClientHello"

    def _preread(self) -> None:
        ctx = self.ctx
        data = bytes(self.held)
        if ctx.accept_proxy_protocol and not self._proxied:
            try:
                header = proxy_protocol.parse(data)
            except ProxyHeaderError as exc:
                self._end(Source.DOWNSTREAM, f"proxy_protocol: {exc}")
                return
            if isinstance(header, int):
                self._wanted = header
                return
            self._proxied = True
            self._wanted = 1
            del self.held[: header.length]
            data = data[header.length :]
            self.bytes_in -= header.length
            if header.source is not None:
                self.client = header.source
                self.client_ip = header.source[0].encode()
                self.local = header.destination
        plan = ctx.plan
        names = ctx.server_names
        if names is not None:
            try:
                hello = read_server_name(data)
            except NotTls as exc:
                self._end(Source.DOWNSTREAM, f"sni_routes: {exc}")
                return
            if isinstance(hello, int):
                self._wanted = hello
                return
            name = self.server_name = hello.server_name
            if name is not None:
                plan = names.lookup(name) or plan
            if plan is None:
                shown = "no server name" if name is None else f"server name {name!r}"
                self._end(
                    Source.DOWNSTREAM,
                    f"{shown}: no sni_routes entry matches, and the listener has no "
                    "`upstream` for the rest",
                )
                return
        assert plan is not None
        self._connect(plan)

    # -- connecting, with failover -----------------------------------------------------------

    def _connect(self, plan: TcpPlan) -> None:
        self.phase = _CONNECTING
        self.plan = plan
        self._pause(_WAITING)
        self._task = self.loop.create_task(self._open(plan))

    async def _open(self, plan: TcpPlan) -> None:
        try:
            await self._open_target(plan)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "tcp listener %s: internal error while connecting %s to upstream %s",
                self.ctx.name,
                self.client_ip.decode(),
                plan.upstream.name,
            )
            self._task = None
            self._end_attempt(ok=True)
            self._end(Source.INTERNAL, "internal error while connecting to a target", quiet=True)

    async def _open_target(self, plan: TcpPlan) -> None:
        """Connect to a target the balancer picks; on a connect failure, to the next one,
        while `retries` allow (`connect_failure`, up to `attempts` targets in all)."""
        upstream = plan.upstream
        tried: frozenset[object] = frozenset()
        failure = ""
        while True:
            pick = plan.pick_context(self.client_ip, tried)
            admission = upstream.admission
            if admission is not None and admission.full:
                pick.exclude = pick.exclude | admission.full
            target = upstream.pick(pick)
            if target is None:
                self._task = None
                self._end(Source.UPSTREAM, _no_target(upstream.name, failure, admission))
                return
            self._begin_attempt(target)
            started = monotonic()  # the loop's clock ticks in milliseconds under uvloop
            try:
                async with asyncio.timeout(upstream.connect_timeout):
                    _, conn = await self.loop.create_connection(
                        partial(TargetConnection, self), target.host, target.port
                    )
            except TimeoutError:
                failure = (
                    f"connecting to target {target.name} timed out after "
                    f"{upstream.connect_timeout:g}s"
                )
            except OSError as exc:
                failure = f"connecting to target {target.name} failed: {exc.strerror or exc}"
            except asyncio.CancelledError:
                self._end_attempt(ok=True)  # the client left: not the target's failure
                raise
            else:
                self._task = None
                self.connect_seconds = monotonic() - started
                if self.phase == _CLOSED:  # the client left as the connection was made
                    conn.close()
                    self._end_attempt(ok=True)
                    return
                self._pipe(conn)
                return
            self._end_attempt(ok=False)
            tried = tried | {target}
            again = upstream.retry.allows(len(tried), Kind.CONNECT_FAILURE, 0, True) and len(
                tried
            ) < len(upstream.targets)
            log.warning(
                "tcp listener %s: %s (upstream=%s client=%s, try %d%s)",
                self.ctx.name,
                failure,
                upstream.name,
                self.client_ip.decode(),
                len(tried),
                "; trying another target" if again else "",
            )
            if not again:
                self._task = None
                if len(tried) < len(upstream.targets):
                    why = f"retries.attempts ({upstream.retry.attempts}) reached"
                else:
                    why = f"no other target of upstream {upstream.name!r} to try"
                self._end(Source.UPSTREAM, f"{failure}; {why}", quiet=True)
                return

    def _begin_attempt(self, target: Target) -> None:
        assert self.plan is not None
        upstream = self.plan.upstream
        self.chosen = target
        self._attempt_started = monotonic()
        if upstream.admission is not None:
            upstream.admission.enter(target)
            self.admitted = target
        if upstream.feedback:
            target.state.start()
            self.counted = target

    def _end_attempt(self, *, ok: bool) -> None:
        """Settle the attempt's feedback, once: a connected one reports its connect time
        (as nginx's `least_time connect`), a failed one the time it took to fail."""
        counted, self.counted = self.counted, None
        if counted is not None:
            seconds = self.connect_seconds
            if seconds is None:
                seconds = monotonic() - self._attempt_started
            counted.state.finish(seconds, ok)
        admitted, self.admitted = self.admitted, None
        if admitted is not None:
            assert self.plan is not None and self.plan.upstream.admission is not None
            self.plan.upstream.admission.leave(admitted)

    def _pipe(self, conn: TargetConnection) -> None:
        """Connected: start the target's side with the PROXY header and the held bytes."""
        assert self.plan is not None and conn.transport is not None
        self.phase = _PIPING
        version = self.plan.proxy_protocol
        first = proxy_protocol.encode(version, self.client, self.local) if version else b""
        if self.held:
            first += self.held
            self.held = bytearray()
        if first:
            conn.transport.write(first)
        if self.client_eof:
            conn.transport.write_eof()
            if self.target_eof:
                self._close_both()
                return
        self._last = self.loop.time()
        self._resume(_WAITING)
        self.watchdog.arm(self._last + self.ctx.idle_timeout)

    # -- used by TargetConnection ------------------------------------------------------------

    def target_eof_received(self) -> bool:
        self.target_eof = True
        if self.closed_by is None:
            self.closed_by = "target"
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write_eof()
        if self.client_eof and self.phase == _PIPING:
            self._close_both()
        return True

    def target_lost(self, conn: TargetConnection, exc: Exception | None) -> None:
        if conn is not self.target:
            return
        self._end_attempt(ok=exc is None)
        if self.phase == _CLOSED:
            return
        self.phase = _CLOSED
        if self.closed_by is None:
            self.closed_by = "target"
        if exc is not None and self.error is None:
            name = self.chosen.name if self.chosen is not None else "-"
            self.error_source, self.error = Source.UPSTREAM, f"target {name}: {exc}"
        if self.transport is not None:
            self.transport.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _pause(self, reason: int) -> None:
        self._paused |= reason
        transport = self.transport
        if self._controls(transport):
            assert transport is not None
            if transport.is_reading():
                transport.pause_reading()

    def _resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        transport = self.transport
        if not self._paused and self._controls(transport):
            assert transport is not None
            if not transport.is_reading():
                transport.resume_reading()

    def _controls(self, transport: asyncio.Transport | None) -> bool:
        """Whether reading may be paused or resumed: not after EOF (a resumed transport
        would read the EOF again) or close. The transport's own `is_reading()` is the
        truth, not `_paused`: uvloop starts reading only after `connection_made`, so a
        pause asked for there does not hold (see data_received)."""
        return transport is not None and not self.client_eof and not transport.is_closing()

    def _close_both(self) -> None:
        self.phase = _CLOSED
        if self.transport is not None:
            self.transport.close()
        target = self.target
        if target is not None and target.transport is not None:
            target.transport.close()

    def _end(self, source: Source, message: str, *, quiet: bool = False) -> None:
        """End the connection because of an error: log it, close both sides."""
        if self.error is None:
            self.error_source, self.error = source, message
        if not quiet:
            level = logging.WARNING if source is not Source.DOWNSTREAM else logging.INFO
            log.log(
                level,
                "tcp listener %s: %s: %s (client=%s)",
                self.ctx.name,
                source.value,
                message,
                self.client_ip.decode(),
            )
        self._close_both()

    def _on_timer(self) -> None:
        """The one timer: the preread deadline, then the idle timeout."""
        transport = self.transport
        if transport is None:
            return
        now = self.loop.time()
        ctx = self.ctx
        phase = self.phase
        if phase == _PREREAD:
            got = f"{len(self.held)} bytes" if self.held else "nothing"
            self._end(
                Source.DOWNSTREAM,
                f"no complete {self._awaited} within {ctx.preread_timeout:g}s "
                f"(timeouts.preread); got {got}",
            )
            return
        deadline = self._last + ctx.idle_timeout
        if phase == _CONNECTING:
            deadline = now + ctx.idle_timeout  # the connect timeout watches this phase
        elif now >= deadline:
            if phase == _PIPING:
                self.closed_by = "idle_timeout"
                log.info(
                    "tcp listener %s: no bytes either way for %gs (timeouts.idle); closing "
                    "(client=%s target=%s)",
                    ctx.name,
                    ctx.idle_timeout,
                    self.client_ip.decode(),
                    self.chosen.name if self.chosen is not None else "-",
                )
            self.phase = _CLOSED
            transport.abort()
            target = self.target
            if target is not None and target.transport is not None:
                target.transport.abort()
            return
        self.watchdog.arm(deadline)

    def _log(self) -> None:
        ctx = self.ctx
        access_log = ctx.access_log
        if not access_log.enabled:
            return
        plan = self.plan
        source = self.error_source
        access_log.write_connection(
            ConnectionRecord(
                client_ip=self.client_ip,
                listener=ctx.name,
                server_name=self.server_name,
                upstream=plan.upstream.name if plan is not None else None,
                target=self.chosen.name if self.chosen is not None else None,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                seconds=monotonic() - self.started,
                connect_seconds=self.connect_seconds,
                closed_by=self.closed_by,
                error_source=source.value if source is not None else None,
                error=self.error,
            )
        )


def _no_target(upstream: str, failure: str, admission: Admission | None) -> str:
    if failure:
        return f"{failure}, and no other target of upstream {upstream!r} is available"
    if admission is not None and admission.full:
        return f"every available target of upstream {upstream!r} is at max_conns"
    return f"no target of upstream {upstream!r} is available"


class TargetConnection(asyncio.Protocol):
    """The target's side: forwards to the client, tells it of FIN, close and fullness."""

    __slots__ = ("owner", "transport")

    def __init__(self, owner: ClientConnection) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.owner.phase == _CLOSED:
            transport.close()  # the client is gone already
            return
        self.owner.target = self

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        owner.bytes_out += len(data)
        owner._last = owner.loop.time()
        client = owner.transport
        if client is not None and owner.phase != _CLOSED:
            client.write(data)

    def eof_received(self) -> bool:
        return self.owner.target_eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.owner.target_lost(self, exc)

    def pause_writing(self) -> None:
        """The target reads slower than the client sends."""
        self.owner._pause(_TARGET_FULL)

    def resume_writing(self) -> None:
        self.owner._resume(_TARGET_FULL)

    def pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not self.owner.target_eof and not transport.is_closing():
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and not self.owner.target_eof and not transport.is_closing():
            transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
