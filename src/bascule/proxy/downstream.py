"""DownstreamConnection: one client connection, from accept to close.

Everything happens in Protocol callbacks; a task exists only while a new connection to a
target is being opened. One exchange is active at a time: bytes of a pipelined next request
are held (and reading paused) until the current response has been sent, which keeps
responses in order and memory bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from time import monotonic
from typing import TYPE_CHECKING, cast

from bascule.balancing import PickContext
from bascule.filters.cache import CacheExchange, Fields, HttpCache, Lookup, Outcome
from bascule.filters.cache_store import Entry
from bascule.http.codec import RequestReader
from bascule.http.errors import HttpError, error_body, simple_response
from bascule.http.forwarding import CLIENT_CERT_SUBJECT, upstream_request_head
from bascule.http.head import RequestHead
from bascule.http.tracing import as_received, id_line, identify, new_request_id
from bascule.net.tls import client_subject
from bascule.proxy.cached import cached_response
from bascule.proxy.errors import Kind, ProxyError, Source
from bascule.proxy.exchange import Exchange
from bascule.proxy.listener_context import ListenerContext
from bascule.proxy.refresh import refresh
from bascule.proxy.upstream_connection import UpstreamConnection
from bascule.proxy.watchdog import Watchdog
from bascule.routing.actions import Redirect, Respond
from bascule.routing.host import normalize_host
from bascule.telemetry.metrics import SETTLE_BATCH
from bascule.upstream.admission import Admission
from bascule.upstream.connect_errors import ConnectTimeout
from bascule.upstream.target import Target

log = logging.getLogger("bascule.proxy")

# What a cache lookup that sends the request on counts as, in bascule_cache_requests_total.
_RESULTS = {Outcome.MISS: "miss", Outcome.VALIDATE: "stale", Outcome.BYPASS: "bypass"}

# Why reading from the client is paused; reading resumes when no reason is left.
_HELD = 1  # a pipelined request waits for the current response
_CONNECTING = 2  # request bytes wait for a connection to the target
_UPSTREAM_FULL = 4  # the target reads the request body slower than the client sends it
_QUEUED = 8  # the request waits for a target under max_conns

RETRY_AFTER_NO_TARGET = 1  # seconds, in the 503 answered when no target is available
HTTPS_PORT = 443  # left out of redirect_https locations
# What a redirect_https Location may carry as its host: a DNS name or IP literal, nothing
# that could turn the URL into another one.
_REDIRECTABLE_HOST = re.compile(rb"[a-z0-9_.-]+|\[[0-9a-f:.]+\]")


class DownstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_head_since",
        "_held",
        "_idle_since",
        "_last_read",
        "_paused",
        "_pick",
        "_requests",
        "_write_paused_at",
        "cert_line",
        "client_ip",
        "ctx",
        "ex",
        "log_prefix",
        "loop",
        "peer_ip",
        "peer_trusted",
        "reader",
        "transport",
        "tunnel",
        "watchdog",
        "write_paused",
    )

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = RequestReader(
            self, ctx.max_header_bytes, ctx.max_uri_bytes, ctx.max_body_bytes
        )
        self.peer_ip = b""  # who connected
        self.peer_trusted = False  # a trusted proxy: its X-Forwarded-For names the client
        self.client_ip = b""  # the client of the current request (the peer, unless trusted)
        self.log_prefix = ""
        self.cert_line = b""  # "\r\nX-Client-Cert-Subject: ..." for a verified client
        self.ex: Exchange | None = None
        self.tunnel: UpstreamConnection | None = None
        self._held = b""
        self._paused = 0
        self._pick = PickContext()
        self._requests = 0
        self.write_paused = False  # the client reads slower than we send
        self._write_paused_at = 0.0
        self._head_since = self._idle_since = self._last_read = 0.0
        self.watchdog = Watchdog(self.loop, self._on_timer)

    # -- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer_ip = self.client_ip = peer[0].encode() if peer else b"-"
        self.peer_trusted = self.ctx.trusted_proxies.trusts(self.peer_ip)
        self.log_prefix = self.ctx.access_log.client_prefix(self.client_ip)
        self._pick = PickContext(self.client_ip)
        if self.ctx.client_certificates:
            subject = client_subject(transport.get_extra_info("ssl_object"))
            if subject is not None:
                self.cert_line = b"\r\n" + CLIENT_CERT_SUBJECT + b": " + subject
        self.ctx.connections.add(self)
        now = self.loop.time()
        self._head_since = self._idle_since = self._last_read = now
        self.watchdog.arm(now + self.ctx.header_timeout)

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.send(data)
            return
        now = self._last_read = self.loop.time()
        ex = self.ex
        if ex is not None and ex.request_done:
            self._held += data
            self._pause(_HELD)
            return
        if ex is None and not self.reader.partial_head:
            self._head_since = now
        reader = self.reader
        while True:
            try:
                rest = reader.feed(data)
            except HttpError as exc:
                self._reject(exc.status, exc.reason)
                return
            except Exception:
                log.exception(
                    "internal error while reading a request from %s", self.client_ip.decode()
                )
                self._reject(500, "internal error", Source.INTERNAL)
                return
            ex = self.ex
            if rest is None:
                if ex is None:
                    self.watchdog.arm(self._head_since + self.ctx.header_timeout)
                elif not ex.request_done:
                    self.watchdog.arm(self._last_read + self.ctx.body_timeout)
                return
            if not rest or self.transport is None or self.transport.is_closing():
                return
            if ex is not None:
                self._held = rest
                self._pause(_HELD)
                return
            data = rest
            self._head_since = self.loop.time()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.watchdog.cancel()
        self.ctx.forget(self)
        ex = self.ex
        if ex is None:
            return
        self.ex = None
        conn = ex.upstream_conn
        if self.tunnel is not None:
            self.tunnel = None
            if conn is not None:
                conn.ex = conn.client = None
                conn.close()
            self._log(ex)
            return
        if ex.waiter is not None:
            ex.waiter.cancel()
        if not ex.response_done:
            ex.error = ProxyError(
                Source.DOWNSTREAM, 499, "client closed the connection before the response ended"
            )
            if not ex.response_started:
                ex.status = 499
            if conn is not None:
                conn.detach()
            self._log(ex)
        elif ex.attempt_started or ex.admitted is not None:
            ex.end_attempt(ok=True)  # answered in full; the client left before sending all

    def pause_writing(self) -> None:
        self.write_paused = True
        self._write_paused_at = self.loop.time()
        ex = self.ex
        if ex is not None and ex.upstream_conn is not None:
            ex.upstream_conn.pause_reading()
        self.watchdog.arm(self._write_paused_at + self.ctx.body_timeout)

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.ex
        if ex is not None and ex.upstream_conn is not None:
            ex.upstream_conn.resume_reading()

    # -- used by UpstreamConnection --------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def pause_reading_for_upstream(self) -> None:
        self._pause(_UPSTREAM_FULL)

    def resume_reading_for_upstream(self) -> None:
        self._resume(_UPSTREAM_FULL)

    def start_tunnel(self, conn: UpstreamConnection) -> None:
        """The target switched protocols: from now on bytes pass untouched both ways."""
        self.tunnel = conn
        self.watchdog.cancel()  # the target connection's timer watches the tunnel's idle time
        if self._held:
            conn.send(self._held)
            self._held = b""
        self._resume(_HELD)

    def end_tunnel(self) -> None:
        ex, self.ex = self.ex, None
        self.tunnel = None
        if ex is not None:
            self._log(ex)
        self._close()

    def exchange_finished(self, ex: Exchange) -> None:
        """The response has been sent in full (or the exchange is otherwise over)."""
        if ex is not self.ex:
            return
        self.ex = None
        ctx = self.ctx
        if ex.attempt_started or ex.admitted is not None:
            ex.end_attempt(ok=ex.status < 500)
        self._settled(ex)
        if ex.close_after or not ex.request_done or not ex.head.keep_alive or ctx.draining:
            self._close()
            return
        deadline = self._idle_since = self.loop.time()
        # The timer may be set for much later (a body or header deadline); an idle
        # keep-alive connection must close after keepalive_timeout, not after that.
        deadline += ctx.keepalive_timeout
        if self.watchdog.handle is None or self.watchdog.at > deadline:
            self.watchdog.arm(deadline)
        held = self._held
        if held:
            self._held = b""
            self.data_received(held)
        if self._paused & _HELD:
            self._resume_unless_held()

    def _resume_unless_held(self) -> None:
        """Read again, unless the held bytes began an exchange whose request is complete:
        the request after it waits for its response. (A method of its own, so that no
        narrowing of `self.ex` from before `data_received` is trusted: mypyc checks it.)"""
        ex = self.ex
        if ex is None or not ex.request_done:
            self._resume(_HELD)

    def upstream_failed(self, ex: Exchange, error: ProxyError) -> None:
        if ex is not self.ex:
            return
        ex.upstream_conn = None
        ex.end_attempt(ok=False)
        if not ex.response_started and self._retry(ex, error):
            return
        state = ex.cache
        stale = state.stale_for_error() if state is not None and not ex.response_started else None
        if stale is not None:
            assert state is not None
            status = state.lookup.status + b"; detail=stale-if-error"
            self._answer_from(ex, stale, state.lookup.fields, status, state.cache.clock())
            return
        ex.error = error
        target = ex.target.name if ex.target is not None else "-"
        log.warning(
            "%d %s: %s (target=%s route=%s client=%s %s %s)",
            error.status,
            error.source.value,
            error.message,
            target,
            ex.plan.name if ex.plan else "-",
            self.client_ip.decode(),
            ex.head.method.decode(),
            ex.head.path.decode("latin-1"),
        )
        if ex.response_started:
            # Part of the response is out: closing is the only honest signal left.
            self.ex = None
            self._log(ex)
            self._close()
            return
        self._respond(ex, error.status, error_body(error.status, error.message))

    def close_if_idle(self) -> None:
        """Draining: close a keep-alive connection waiting for its next request. One that
        has not sent its first request yet gets to send it (answered with Connection:
        close): it was accepted just before the drain, and its client is writing to it."""
        if self.ex is None and self._requests and not self.reader.partial_head:
            self._close()

    # -- request callbacks from the codec --------------------------------------------------

    def on_request_head(self, head: RequestHead) -> None:
        ctx = self.ctx
        if self.peer_trusted:
            self._set_client(
                ctx.trusted_proxies.client(
                    self.peer_ip, head.forwarded_for, head.header(b"forwarded")
                )
            )
        ex = self.ex = Exchange(head, monotonic(), self.log_prefix)
        self._requests += 1
        if ctx.request_ids:
            if head.identified:
                ex.request_id, ex.trace_lines, ex.hop = identify(head, self.peer_trusted)
            else:  # the usual case: nothing to read from the request
                request_id = ex.request_id = new_request_id()
                ex.trace_lines = id_line(request_id)
        elif head.identified:
            ex.trace_lines = as_received(head)
        if head.wants_upgrade:
            # if the target refuses the upgrade, what the client sends next is not HTTP
            ex.close_after = True
        method = head.method
        if method == b"CONNECT":
            self._refuse(ex, 405, "CONNECT is not supported: Bascule is a reverse proxy")
            return
        if ctx.redirect_https is not None:
            self._redirect_to_https(ex, ctx.redirect_https)
            return
        route = ctx.router.match(head.method, head.host, head.path, head.header)
        if route is None:
            self._refuse(ex, 404, "no route matches this request")
            return
        if method == b"TRACE" and (route.methods is None or method not in route.methods):
            # it would echo the request, credentials included, to a page's script
            self._refuse(ex, 405, "TRACE is refused unless a route's match.methods lists it")
            return
        plan = ex.plan = ctx.plans[route]
        if head.wants_upgrade and not plan.allows_upgrade(head.upgrade):
            head.wants_upgrade = False  # forwarded as a plain request: no smuggled protocol
            ex.close_after = False
        upstream = plan.upstream
        if upstream is None:
            action = route.action
            if isinstance(action, Redirect):
                location = action.location(ctx.scheme, head.host, head.path, head.query)
                self._respond(ex, action.status, b"", extra=b"\r\nLocation: " + location)
            else:
                assert isinstance(action, Respond)
                self._respond(
                    ex,
                    action.status,
                    action.body,
                    content_type=action.content_type,
                    extra=plan.respond_lines,
                )
            return
        selection = plan.selection
        ex.pick = self._pick if selection is None else selection.context(head, self.client_ip)
        if head.content_length or head.chunked:
            length = head.content_length or 0
            if length > ctx.max_body_bytes:
                self._refuse(ex, 413, f"the request body is larger than {ctx.max_body_bytes} bytes")
                return
            limit = upstream.retry.replay_limit
            if limit and length <= limit:
                ex.replay = []  # kept while it fits, so a failed try can be sent again
        if plan.cache is not None and self._through_cache(ex, plan.cache):
            return
        upstream.retry.budget.request()
        self._dispatch(ex)

    # -- the cache -------------------------------------------------------------------------

    def _through_cache(self, ex: Exchange, cache: HttpCache) -> bool:
        """Let the route's cache see `ex`: True if it answers (or will), False if the
        request goes to the target now, with `ex.cache` to record or check its answer."""
        if cache.local is not None:
            return self._after_lookup(ex, cache, cache.lookup(ex.head, self.ctx.scheme))
        started = cache.begin(ex.head, self.ctx.scheme)
        if isinstance(started, Lookup):
            return self._after_lookup(ex, cache, started)
        self._pause(_CONNECTING)
        self.loop.create_task(self._look_up_shared(ex, cache, *started))
        return True

    async def _look_up_shared(
        self, ex: Exchange, cache: HttpCache, key: str, fields: Fields
    ) -> None:
        """The shared store answers after a round trip; meanwhile the client waits."""
        variants = await cache.store.fetch(key)
        if self.ex is not ex or self.transport is None:
            return
        self._resume(_CONNECTING)
        if not self._after_lookup(ex, cache, cache.decide(ex.head, key, fields, variants)):
            self._send_upstream(ex)

    def _after_lookup(self, ex: Exchange, cache: HttpCache, lookup: Lookup) -> bool:
        """Act on what the cache found: answer from it, or let the request go on (False)."""
        outcome = lookup.outcome
        plan = ex.plan
        assert plan is not None
        if outcome is Outcome.HIT:
            self.ctx.metrics.looked_up(plan.name, "hit")
            assert lookup.entry is not None
            if lookup.refresh and lookup.key not in cache.refreshing:
                self.loop.create_task(refresh(cache, lookup, ex, self.ctx.scheme))
            self._answer_from(ex, lookup.entry, lookup.fields, lookup.status, cache.clock())
            return True
        if outcome is Outcome.UNAVAILABLE:
            self.ctx.metrics.looked_up(plan.name, "unavailable")
            extra = b"\r\nCache-Status: bascule; " + lookup.status
            message = "only-if-cached: no stored response fits the request"
            self._respond(ex, 504, error_body(504, message), extra=extra)
            return True
        ex.cache = CacheExchange(cache, lookup, ex.head, self.ctx.scheme)
        if outcome is Outcome.MISS and ex.head.method == b"GET":
            fetch = cache.fetching.get(lookup.key)
            if fetch is not None:  # counted once it has its answer
                self._pause(_CONNECTING)
                self.loop.create_task(self._wait_for_fetch(ex, cache, lookup, fetch))
                return True
            ex.cache.lead()
        self.ctx.metrics.looked_up(plan.name, _RESULTS[outcome])
        return False

    async def _wait_for_fetch(
        self, ex: Exchange, cache: HttpCache, lookup: Lookup, fetch: asyncio.Future[Entry | None]
    ) -> None:
        """Another exchange is fetching this key: take its answer (rule 6 of the cache)."""
        stored = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cache.collapse_timeout):
                stored = await asyncio.shield(fetch)
        if self.ex is not ex or self.transport is None:
            return
        self._resume(_CONNECTING)
        if stored is not None:
            again = cache.decide(ex.head, lookup.key, lookup.fields, [stored])
            if self._after_lookup(ex, cache, again):
                return
        elif self._through_cache(ex, cache):
            return
        self._send_upstream(ex)

    def _send_upstream(self, ex: Exchange) -> None:
        plan = ex.plan
        assert plan is not None and plan.upstream is not None
        plan.upstream.retry.budget.request()
        self._dispatch(ex)

    def _answer_from(
        self, ex: Exchange, entry: Entry, fields: Fields, cache_status: bytes, now: float
    ) -> None:
        """Answer `ex` with a stored response."""
        ex.local = True
        ex.response_started = ex.response_done = True
        self.send(self.stored_answer(ex, entry, fields, cache_status, now))
        if ex.request_done or ex.close_after:
            self.exchange_finished(ex)

    def stored_answer(
        self, ex: Exchange, entry: Entry, fields: Fields, cache_status: bytes, now: float
    ) -> bytes:
        """The bytes that answer `ex` with a stored response; decides whether the
        connection closes after it."""
        close = self._closes_after_local_answer(ex)
        keep_alive_1_0 = ex.head.version == "1.0" and not close
        return cached_response(
            ex, entry, fields, cache_status, now, close=close, keep_alive_1_0=keep_alive_1_0
        )

    def _closes_after_local_answer(self, ex: Exchange) -> bool:
        """Bascule answers `ex` itself: does the connection close after it? (Recorded in
        `ex.close_after`.) Yes when the request body is still coming, as nobody waits
        for it, and as for any answer when the client or a drain asks."""
        head = ex.head
        if head.has_body and not ex.request_done:
            ex.close_after = True
        ex.close_after = ex.close_after or not head.keep_alive or self.ctx.draining
        return ex.close_after

    def on_request_body(self, chunk: bytes) -> None:
        ex = self.ex
        if ex is None or ex.local:
            return
        ex.bytes_in += len(chunk)  # within max_body_bytes: the codec refuses a larger body
        if ex.head.chunked:
            chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        replay = ex.replay
        if replay is not None:
            plan = ex.plan
            assert plan is not None and plan.upstream is not None
            if ex.bytes_in <= plan.upstream.retry.replay_limit:
                replay.append(chunk)
            else:
                ex.replay = None  # too big to keep: this request is not resent once sent
        conn = ex.upstream_conn
        if conn is None:
            ex.hold(chunk)
        else:
            conn.send(chunk)

    def on_request_end(self) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.request_done = True
        if ex.local:
            if ex.response_done:
                self.exchange_finished(ex)
            return
        if ex.head.chunked:
            if ex.replay is not None:
                ex.replay.append(b"0\r\n\r\n")
            if ex.upstream_conn is None:
                ex.hold(b"0\r\n\r\n")
            else:
                ex.upstream_conn.send(b"0\r\n\r\n")

    # -- forwarding ------------------------------------------------------------------------

    def _dispatch(self, ex: Exchange, *, fresh: bool = False, queued: bool = False) -> None:
        plan = ex.plan
        if TYPE_CHECKING:
            assert plan is not None and plan.upstream is not None and ex.pick is not None
        upstream = plan.upstream
        admission = upstream.admission
        if admission is None:
            target = upstream.pick(ex.pick)
        else:
            target = self._pick_admitted(ex, admission, queued)
        if target is None:
            if admission is None:
                self._no_target(ex)
            return
        ex.target = target
        if upstream.feedback:
            ex.attempt_started = monotonic()
            target.state.start()
        request = ex.head
        rewrite = plan.rewrite
        added = ex.trace_lines + self.cert_line + plan.request_added
        remove = plan.request_remove
        cache = ex.cache
        if cache is not None and cache.lookup.outcome is not Outcome.BYPASS:
            remove = cache.cache.request_remove  # the client's validators are not sent
            added += cache.validators()
        head = upstream_request_head(
            request,
            self.ctx.forwarding,
            self.peer_ip,
            self.client_ip,
            request.target if rewrite is None else rewrite.target(request.path, request.query),
            _host_line(request, plan.preserve_host, target),
            added,
            remove,
        )
        conn = None if fresh else target.pool.take_idle()
        if conn is not None:
            if TYPE_CHECKING:
                assert isinstance(conn, UpstreamConnection)
            conn.begin(ex, self, head)
            return
        self._pause(_CONNECTING)
        self.loop.create_task(self._connect(ex, target, head))

    def _pick_admitted(self, ex: Exchange, admission: Admission, queued: bool) -> Target | None:
        """A target under its max_conns, entered there; or None, and `ex` waits in the
        queue or is answered 503."""
        plan = ex.plan
        pick = ex.pick
        if TYPE_CHECKING:
            assert plan is not None and plan.upstream is not None and pick is not None
        full = admission.full
        if full:
            pick = PickContext(pick.client_ip, pick.hash_key, pick.override, pick.exclude | full)
        target = plan.upstream.pick(pick)
        if target is None:
            if full:
                self._wait_in_queue(ex, admission, first=queued)
            else:
                self._no_target(ex)
            return None
        admission.enter(target)
        ex.admitted = target
        return target

    async def _connect(self, ex: Exchange, target: Target, head: bytes) -> None:
        timeout = target.pool.connect_timeout
        began = monotonic()
        try:
            conn = await target.pool.connect()
        except ConnectTimeout:
            error = ProxyError(
                Source.UPSTREAM,
                504,
                f"connecting to target {target.name} timed out after {timeout:g}s",
                kind=Kind.CONNECT_FAILURE,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            error = ProxyError(
                Source.UPSTREAM,
                502,
                f"connecting to target {target.name} failed: {reason}",
                kind=Kind.CONNECT_FAILURE,
            )
        else:
            assert isinstance(conn, UpstreamConnection)
            plan = ex.plan
            if plan is not None and plan.upstream is not None:
                self.ctx.metrics.connected(plan.upstream.name, monotonic() - began)
            if self.ex is not ex or self.transport is None:
                target.pool.put_back(conn)  # still a good connection for someone else
                return
            self._resume(_CONNECTING)
            conn.begin(ex, self, head)
            return
        self._resume(_CONNECTING)
        self.upstream_failed(ex, error)

    def _no_target(self, ex: Exchange) -> None:
        upstream = ex.plan.upstream if ex.plan is not None else None
        name = upstream.name if upstream is not None else "?"
        self._unavailable(ex, f"no target of upstream '{name}' is available")

    def _unavailable(self, ex: Exchange, message: str) -> None:
        """Answer 503 at once, with a hint of when to come back."""
        ex.error = ProxyError(Source.UPSTREAM, 503, message)
        body = error_body(503, message)
        self._respond(ex, 503, body, extra=b"\r\nRetry-After: %d" % RETRY_AFTER_NO_TARGET)

    def _wait_in_queue(self, ex: Exchange, admission: Admission, *, first: bool) -> None:
        """Every target that could take `ex` is at max_conns: wait for one (reading from
        the client paused meanwhile), or answer 503 if the queue is full."""

        def turn() -> bool:
            if self.ex is not ex or self.transport is None:
                return False
            ex.waiter = None
            self._resume(_QUEUED)
            self._dispatch(ex, queued=True)
            return True

        def timed_out() -> None:
            if self.ex is ex:
                ex.waiter = None
                self._resume(_QUEUED)
                self._unavailable(ex, f"no target was free within {admission.queue_timeout:g}s")

        waiter = admission.wait(turn, timed_out, first=first)
        if waiter is None:
            self._unavailable(
                ex, "every target is at max_conns and the queue is full (max_pending)"
            )
            return
        ex.waiter = waiter
        self._pause(_QUEUED)

    def retry_possible(self, ex: Exchange, error: ProxyError) -> bool:
        """Would `_retry` send `ex` again after `error`? (Asked before a response that
        `retries.on` names is let through to the client.)"""
        plan = ex.plan
        assert plan is not None and plan.upstream is not None and ex.pick is not None
        upstream = plan.upstream
        return len(ex.pick.exclude) + 1 < len(upstream.targets) and upstream.retry.allows(
            ex.attempts, error.kind, error.status, self._resendable(ex)
        )

    def _retry(self, ex: Exchange, error: ProxyError) -> bool:
        """Send the request again where the upstream's `retries:` allow it (see
        upstream/retry_policy.py): to a target not tried yet, within the budget.

        A reused keep-alive connection that the target had closed before reading is not
        the target failing: the request goes once more on a new connection to the same
        target, if it has no body or all of it was kept.
        """
        assert ex.pick is not None and ex.target is not None
        if error.stale:
            if ex.attempts > 1 or not self._resendable(ex, any_method=True):
                return False
            ex.attempts += 1
            self._resend(ex)
            self._dispatch(ex, fresh=True)
            return True
        if not self.retry_possible(ex, error):
            return False
        plan = ex.plan
        assert plan is not None and plan.upstream is not None
        plan.upstream.retry.spend(error.kind)
        self.ctx.metrics.retried(plan.upstream.name)
        ex.attempts += 1
        pick = ex.pick
        ex.pick = PickContext(
            pick.client_ip, pick.hash_key, pick.override, pick.exclude | {ex.target}
        )
        if error.kind is not Kind.CONNECT_FAILURE:
            self._resend(ex)
        self._dispatch(ex)
        return True

    def _resendable(self, ex: Exchange, *, any_method: bool = False) -> bool:
        """The request can be sent again: its method allows it, and its body (if any) was
        kept whole."""
        plan = ex.plan
        assert plan is not None and plan.upstream is not None
        head = ex.head
        if not any_method and head.method not in plan.upstream.retry.methods:
            return False
        return not head.has_body or (ex.replay is not None and ex.request_done)

    def _resend(self, ex: Exchange) -> None:
        """The request bytes go out again, from the kept copy of the body."""
        ex.upstream_started = 0.0
        ex.pending = list(ex.replay) if ex.replay else None

    # -- answering ourselves ---------------------------------------------------------------

    def _respond(
        self,
        ex: Exchange,
        status: int,
        body: bytes,
        *,
        content_type: bytes = b"text/plain; charset=utf-8",
        extra: bytes = b"",
    ) -> None:
        """Answer `ex` without a target (respond/redirect routes and errors)."""
        ex.local = True
        ex.status = status
        ex.response_started = ex.response_done = True
        ex.bytes_out = len(body)
        close = self._closes_after_local_answer(ex)
        head = ex.head
        plan = ex.plan
        if plan is not None and plan.response_added:
            extra += plan.response_added
        if ex.request_id:
            extra += id_line(ex.request_id)
        self.send(
            simple_response(
                status,
                body,
                content_type=content_type,
                close=close,
                extra=extra,
                head_only=head.method == b"HEAD",
            )
        )
        if ex.request_done or close:
            self.exchange_finished(ex)

    def _redirect_to_https(self, ex: Exchange, port: int) -> None:
        """redirect_https: the same URL in https, for every request (no route is consulted).

        301 for GET and HEAD; 308 otherwise, so that a POST stays a POST with its body.
        """
        head = ex.head
        host = normalize_host(head.host)
        if not _REDIRECTABLE_HOST.fullmatch(host):
            what = "no Host header" if not host else "a Host header that is not a host name"
            self._refuse(ex, 400, f"cannot redirect to https: the request has {what}")
            return
        location = b"https://" + host
        if port != HTTPS_PORT:
            location += b":%d" % port
        target = head.target  # origin-form: the codec turned an absolute-form one into it
        location += target if target[:1] == b"/" else b"/"  # `OPTIONS *`: the site's root
        status = 301 if head.method in (b"GET", b"HEAD") else 308
        self._respond(ex, status, b"", extra=b"\r\nLocation: " + location)

    def _refuse(self, ex: Exchange, status: int, message: str) -> None:
        self._respond_error(ex, ProxyError(Source.DOWNSTREAM, status, message))

    def _respond_error(self, ex: Exchange, error: ProxyError) -> None:
        ex.error = error
        self._respond(ex, error.status, error_body(error.status, error.message))

    def _reject(self, status: int, reason: str, source: Source = Source.DOWNSTREAM) -> None:
        """The client sent something unacceptable (or Bascule failed reading it): answer if
        we still can, then close."""
        ex = self.ex
        error = ProxyError(source, status, reason)
        log.info("%d %s: %s (client=%s)", status, source.value, reason, self.client_ip.decode())
        if ex is None:
            ex = Exchange(_UNPARSED, monotonic(), self.log_prefix)
        self.ex = None
        ex.error = error
        conn = ex.upstream_conn
        if conn is not None:
            conn.detach()
        if not ex.response_started:
            ex.status = status
            self.send(simple_response(status, error_body(status, reason), close=True))
        self._log(ex)
        self._close()

    # -- plumbing --------------------------------------------------------------------------

    def _set_client(self, client_ip: bytes) -> None:
        """The client of the requests that follow, as a trusted proxy names it."""
        if client_ip != self.client_ip:
            self.client_ip = client_ip
            self.log_prefix = self.ctx.access_log.client_prefix(client_ip)
            self._pick = PickContext(client_ip)

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _settled(self, ex: Exchange) -> None:
        """What every exchange's end tells: the cache's waiters, the collector (a span,
        when its trace is sampled), and the access log and the metrics (in batches)."""
        ctx = self.ctx
        if ex.cache is not None:
            ex.cache.release()
        ex.ended = monotonic()
        if ex.hop is not None and ctx.spans is not None:
            ctx.spans.record(ex)
        metrics = ctx.metrics
        ended = metrics.ended
        ended.append(ex)
        if len(ended) == 1:
            metrics.settle_later()
        elif len(ended) >= SETTLE_BATCH:
            metrics.settle()

    def _log(self, ex: Exchange) -> None:
        """The exchange is over (not through `exchange_finished`): settle and log it."""
        if ex.attempt_started or ex.admitted is not None:
            ex.end_attempt(ok=ex.error is None or ex.error.source is not Source.UPSTREAM)
        self._settled(ex)

    # -- the one timer: header, keep-alive, body and stalled-write timeouts ----------------

    def _on_timer(self) -> None:
        if self.transport is None or self.tunnel is not None:
            return
        now = self.loop.time()
        ctx = self.ctx
        ex = self.ex
        if self.write_paused:
            deadline = self._write_paused_at + ctx.body_timeout
            if now >= deadline:
                log.info(
                    "downstream: client %s read nothing for %gs; closing",
                    self.client_ip.decode(),
                    ctx.body_timeout,
                )
                self._abandon(ex, "client stopped reading the response")
                return
        elif ex is None:
            if self.reader.partial_head:
                deadline = self._head_since + ctx.header_timeout
                if now >= deadline:
                    self._reject(
                        408, f"the request head did not arrive within {ctx.header_timeout:g}s"
                    )
                    return
            else:
                limit = ctx.header_timeout if self._requests == 0 else ctx.keepalive_timeout
                deadline = self._idle_since + limit
                if now >= deadline:
                    self._close()  # nothing was asked: nothing to answer
                    return
        elif not ex.request_done and not ex.local and not self._paused:
            deadline = self._last_read + ctx.body_timeout
            if now >= deadline:
                self._reject(408, f"the request body stalled for {ctx.body_timeout:g}s")
                return
        else:
            deadline = now + ctx.body_timeout
        self.watchdog.arm(deadline)

    def _abandon(self, ex: Exchange | None, reason: str) -> None:
        if ex is not None:
            self.ex = None
            ex.error = ProxyError(Source.DOWNSTREAM, 499, reason)
            conn = ex.upstream_conn
            if conn is not None:
                conn.detach()
            self._log(ex)
        if self.transport is not None:
            self.transport.abort()


def _host_line(request: RequestHead, preserve_host: bool, target: Target) -> bytes | None:
    """The Host to send `target` in place of the client's, or None to keep the client's."""
    if not preserve_host or not request.host:
        return target.address
    return request.host if request.absolute_form else None


# The stand-in head for a request refused before its head could be parsed.
_UNPARSED = RequestHead(b"- - HTTP/1.1\r\n\r\n", "1.1", b"-", b"-")
