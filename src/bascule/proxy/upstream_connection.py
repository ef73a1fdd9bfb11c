"""UpstreamConnection: one connection to a target, carrying one exchange at a time.

It parses the target's response with the sans-IO codec and writes it to the client as it
arrives; bytes produced by one `data_received` are written in one call.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import TYPE_CHECKING, cast

from bascule.balancing.state import parse_load_header
from bascule.filters.cache import Outcome
from bascule.http.codec import ResponseReader
from bascule.http.errors import HttpError
from bascule.http.forwarding import downstream_response_head
from bascule.http.head import ResponseHead
from bascule.http.tracing import id_line
from bascule.proxy.errors import Kind, ProxyError, Source
from bascule.proxy.watchdog import Watchdog

log = logging.getLogger("bascule.proxy")

if TYPE_CHECKING:
    from bascule.proxy.downstream import DownstreamConnection
    from bascule.proxy.exchange import Exchange
    from bascule.upstream.connection_pool import ConnectionPool
    from bascule.upstream.upstream import Upstream

_MAX_RESPONSE_HEAD = 64 * 1024  # what a target may send us as a response head


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_head_due",
        "_keeps_alive",
        "_out",
        "_reading_paused",
        "_try_due",
        "_write_paused_at",
        "client",
        "ex",
        "idle_since",
        "last_activity",
        "loop",
        "pool",
        "reader",
        "requests",
        "transport",
        "tunnel",
        "upstream",
        "watchdog",
    )

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader(self, _MAX_RESPONSE_HEAD)
        self.ex: Exchange | None = None
        self.client: DownstreamConnection | None = None
        self.pool: ConnectionPool | None = None  # set while parked idle
        self.requests = 0  # exchanges carried, so a stale keep-alive connection is recognised
        self.tunnel = False
        self.idle_since = 0.0
        self.last_activity = 0.0
        self._out: list[bytes] = []
        self._keeps_alive = False
        self._reading_paused = False
        self._write_paused_at = 0.0  # when the target stopped taking our bytes; 0: it takes them
        self._head_due = 0.0  # loop time the response head must come by (per_try_timeout)
        self._try_due = 0.0  # loop time the whole try must end by (timeouts.total)
        self.watchdog = Watchdog(self.loop, self._on_timer)

    # -- pool contract ---------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def park(self, pool: ConnectionPool) -> None:
        self.pool = pool
        deadline = self.idle_since = self.loop.time()
        deadline += pool.idle_timeout
        if self.watchdog.handle is None or self.watchdog.at > deadline:
            self.watchdog.arm(deadline)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- carrying an exchange --------------------------------------------------------------

    def begin(self, ex: Exchange, client: DownstreamConnection, head: bytes) -> None:
        """Send `head` (and any request bytes waiting) for `ex`; its response comes to `client`."""
        self.pool = None
        self.ex = ex
        self.client = client
        self.requests += 1
        ex.upstream_conn = self
        if ex.head.method == b"HEAD":
            self.reader.expect_head_response()
        if client.write_paused:
            self.pause_reading()
        pending = ex.pending
        if pending:
            head += b"".join(pending)
            ex.pending = None
        transport = self.transport
        if TYPE_CHECKING:
            assert transport is not None
        transport.write(head)
        ex.upstream_started = monotonic()
        now = self.last_activity = self.loop.time()
        upstream = self.upstream
        deadline = now + upstream.read_timeout
        if upstream.total_timeout is not None or upstream.retry.per_try_timeout is not None:
            deadline = self._start_try(now, deadline)
        watchdog = self.watchdog
        if watchdog.handle is None or watchdog.at > deadline:
            watchdog.arm(deadline)

    def _start_try(self, now: float, deadline: float) -> float:
        """Set the deadlines of a try (per_try_timeout, timeouts.total); the earliest one."""
        upstream = self.upstream
        per_try = upstream.retry.per_try_timeout
        self._head_due = now + per_try if per_try is not None else 0.0
        total = upstream.total_timeout
        self._try_due = now + total if total is not None else 0.0
        if self._head_due and self._head_due < deadline:
            deadline = self._head_due
        if self._try_due and self._try_due < deadline:
            deadline = self._try_due
        return deadline

    def send(self, data: bytes) -> None:
        """Request body bytes (already framed) or tunnel bytes from the client."""
        assert self.transport is not None
        self.transport.write(data)
        if self.tunnel:
            self.last_activity = self.loop.time()

    def detach(self) -> None:
        """The client is gone mid-exchange: this connection's state is unknown, discard it."""
        self.ex = None
        self.client = None
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        client = self.client
        if self.tunnel:
            if client is not None:
                self.last_activity = self.loop.time()
                client.send(data)
            return
        ex = self.ex
        if ex is None or client is None:
            # bytes from an idle target: a late "close" notice or garbage; never reuse it
            self.close()
            return
        self.last_activity = self.loop.time()
        error: ProxyError | None = None
        try:
            rest = self.reader.feed(data)
        except _RetryInstead as retry:
            self._fail(retry.error)
            return
        except HttpError as exc:
            error = ProxyError(Source.UPSTREAM, 502, f"invalid response from target: {exc}")
        except Exception:
            log.exception("internal error while relaying a response from %s", self.upstream.name)
            error = ProxyError(Source.INTERNAL, 500, "internal error while relaying the response")
        if error is not None:
            # What was valid before the fault goes out (a client then sees a response cut
            # short, never one that looks complete); with nothing out yet, it gets the error.
            if self._out and ex.response_started:
                client.send(b"".join(self._out))
            self._fail(error)
            return
        out = self._out
        if out:
            transport = client.transport
            if transport is not None:
                transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self.tunnel:
            if rest:
                client.send(rest)
            client.start_tunnel(self)
        elif ex.response_done:
            self._finish(ex, client, reusable=not rest)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.watchdog.cancel()
        self.transport = None
        if self.pool is not None:
            self.pool.forget(self)
            self.pool = None
            return
        ex, client = self.ex, self.client
        if ex is None or client is None:
            return
        if self.tunnel:
            self.ex = self.client = None
            client.end_tunnel()
            return
        if self.reader.eof():  # a body delimited by the close
            if self._out:
                client.send(b"".join(self._out))
                self._out.clear()
            self._finish(ex, client, reusable=False)
            return
        if ex.response_started:
            message = "target closed the connection in the middle of the response"
        else:
            message = "target closed the connection before responding"
        if ex.response_started:
            self._fail(ProxyError(Source.UPSTREAM, 502, message))
        else:
            stale = self.requests > 1  # a reused connection the target had already closed
            self._fail(ProxyError(Source.UPSTREAM, 502, message, kind=Kind.RESET, stale=stale))

    def pause_writing(self) -> None:
        """The target reads the request slower than the client sends it."""
        now = self._write_paused_at = self.loop.time()
        if self.client is not None:
            self.client.pause_reading_for_upstream()
            self.watchdog.arm(now + self.upstream.send_timeout)

    def resume_writing(self) -> None:
        self._write_paused_at = 0.0
        self.last_activity = self.loop.time()  # the target is making progress
        if self.client is not None:
            self.client.resume_reading_for_upstream()

    def pause_reading(self) -> None:
        """The client reads slower than the target sends."""
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.last_activity = self.loop.time()
            self.transport.resume_reading()

    # -- response callbacks from the codec -------------------------------------------------

    def on_informational(self, head: ResponseHead) -> None:
        ex = self.ex
        if ex is not None and ex.head.version == "1.1":
            self._out.append(head.raw)  # 100 Continue and friends, as received

    def on_response_head(self, head: ResponseHead) -> None:
        ex = self.ex
        client = self.client
        if TYPE_CHECKING:
            assert ex is not None and client is not None and ex.plan is not None
        status = head.status
        self._head_due = 0.0
        if status >= 500 and status in self.upstream.retry.statuses:
            target = ex.target.name if ex.target is not None else "?"
            error = ProxyError(
                Source.UPSTREAM, status, f"target {target} answered {status}", kind=Kind.STATUS
            )
            if client.retry_possible(ex, error):
                raise _RetryInstead(error)  # nothing of this response goes out
        request = ex.head
        if status == 101 and not request.wants_upgrade:
            # a request forwarded without Upgrade (or with one its route does not allow)
            raise HttpError(502, "target switched protocols without being asked to")
        ex.status = status
        ex.response_started = True
        plan = ex.plan
        added = plan.response_added
        if ex.request_id:
            added += id_line(ex.request_id)
        if ex.cache is not None:
            lines = self._cache_answer(ex, head)
            if lines is None:
                self._keeps_alive = head.keep_alive
                return  # a stored response answers
            added += lines
        if ex.attempt_started:
            ex.first_byte_after = monotonic() - ex.attempt_started
            if self.upstream.load_header is not None:
                self._take_load_report(head, self.upstream.load_header)
        selection = plan.selection
        if selection is not None and ex.target is not None and ex.pick is not None:
            added += selection.response_lines(ex.pick, ex.target, head)
        if status == 101:
            self.tunnel = True
            self._try_due = 0.0  # a tunnel lasts as long as it is used; its idle timeout rules
            self._out.append(
                downstream_response_head(head, False, False, False, added, plan.response_remove)
            )
            return
        self._keeps_alive = head.keep_alive
        remove = plan.response_remove
        compression = plan.compression
        if compression is not None:
            encoder, lines = compression.apply(request, head)
            added += lines
            if encoder is not None:
                ex.encoder = encoder
                remove = compression.remove  # Content-Length and the strong ETag go
        close = ex.close_after or not request.keep_alive or client.ctx.draining
        version_1_1 = request.version == "1.1"
        if head.content_length is None or ex.encoder is not None or head.chunked:
            # The body is re-framed: chunked to a 1.1 client, until the close to a 1.0 one.
            has_body = status != 204 and status != 304 and request.method != b"HEAD"
            chunked = (head.chunked or has_body) and version_1_1
            close = close or (not version_1_1 and (head.chunked or has_body))
            ex.response_chunked = chunked and has_body
        else:
            chunked = False
        ex.close_after = close
        self._out.append(
            downstream_response_head(
                head, chunked, close, not (version_1_1 or close), added, remove
            )
        )

    def _cache_answer(self, ex: Exchange, head: ResponseHead) -> bytes | None:
        """Show the target's answer to the route's cache. None if a stored response goes
        to the client instead (validated by a 304, or stale-if-error after a 5xx); else
        the lines to add to the answer (its Cache-Status)."""
        state = ex.cache
        assert state is not None and self.client is not None
        stored = state.on_response_head(head)
        lookup = state.lookup
        if lookup.outcome is Outcome.BYPASS and ex.head.method not in (b"GET", b"HEAD"):
            return b""
        status = lookup.status
        forwarded = b"; fwd-status=%d" % head.status
        if lookup.outcome is Outcome.VALIDATE:
            status += forwarded
        if stored is None and head.status >= 500:
            stored = state.stale_for_error()
            if stored is not None and lookup.outcome is not Outcome.VALIDATE:
                status += forwarded
            status += b"; detail=stale-if-error" if stored is not None else b""
        if stored is not None:
            state.answered = True  # what the target sends after this head is dropped
            self._out.append(
                self.client.stored_answer(ex, stored, lookup.fields, status, state.cache.clock())
            )
            return None
        if state.pending is not None:
            status += b"; stored"
        return b"\r\nCache-Status: bascule; " + status

    def _take_load_report(self, head: ResponseHead, header: bytes) -> None:
        """least_load: the target said how loaded it is; garbage is ignored, not guessed at."""
        value = head.header(header)
        load = parse_load_header(value) if value is not None else None
        ex = self.ex
        if load is not None and ex is not None and ex.target is not None:
            ex.target.state.report_load(load)

    def on_response_body(self, chunk: bytes) -> None:
        ex = self.ex
        assert ex is not None
        if ex.cache is not None:
            if ex.cache.answered:
                return
            if ex.cache.pending is not None:
                ex.cache.on_body(chunk)  # as the target sent it: one entry, every encoding
        if ex.encoder is not None:
            chunk = ex.encoder.compress(chunk)
            if not chunk:
                return  # an empty chunk would end a chunked body
        ex.bytes_out += len(chunk)
        if ex.response_chunked:
            self._out.append(b"%x\r\n" % len(chunk))
            self._out.append(chunk)
            self._out.append(b"\r\n")
        else:
            self._out.append(chunk)

    def on_response_end(self) -> None:
        ex = self.ex
        assert ex is not None
        if ex.cache is not None:
            ex.cache.on_end()
        if ex.encoder is not None:
            tail = ex.encoder.finish()
            ex.encoder = None
            if tail:
                ex.bytes_out += len(tail)
                self._out.append(
                    b"%x\r\n%b\r\n" % (len(tail), tail) if ex.response_chunked else tail
                )
        if ex.response_chunked:
            self._out.append(b"0\r\n\r\n")
        ex.response_done = True

    # -- endings ---------------------------------------------------------------------------

    def _finish(self, ex: Exchange, client: DownstreamConnection, *, reusable: bool) -> None:
        self.ex = None
        self.client = None
        # the reader is between messages here: the response ended where `reusable` was decided
        if (
            reusable
            and ex.request_done
            and self.transport is not None
            and ex.target is not None
            and ex.status != 101
            and self._keeps_alive
        ):
            ex.target.pool.put_back(self)
        else:
            self.close()
        client.exchange_finished(ex)

    def _fail(self, error: ProxyError) -> None:
        ex, client = self.ex, self.client
        self.ex = None
        self.client = None
        self.watchdog.cancel()
        self._out.clear()
        if self.transport is not None:
            self.transport.abort()
        if ex is not None and client is not None:
            client.upstream_failed(ex, error)

    # -- the one timer: idle timeout in the pool, read timeout while carrying a request ----

    def _on_timer(self) -> None:
        now = self.loop.time()
        if self.pool is not None:
            deadline = self.idle_since + self.pool.idle_timeout
            if now >= deadline:
                self.close()
            else:
                self.watchdog.arm(deadline)
            return
        ex = self.ex
        if ex is None:
            return
        due = self._due()
        if due and now >= due:
            self._fail(self._try_timeout(ex))
            return
        if self._write_paused_at:
            deadline = self._write_paused_at + self.upstream.send_timeout
            if now >= deadline:
                timeout = self.upstream.send_timeout
                self._fail(
                    ProxyError(
                        Source.UPSTREAM,
                        504,
                        f"target stopped reading the request for {timeout:g}s",
                        kind=Kind.TIMEOUT,
                    )
                )
            else:
                self._arm(deadline)
            return
        if self._reading_paused:  # the client is the slow one; its own timer watches that
            self._arm(now + self.upstream.read_timeout)
            return
        deadline = self.last_activity + self.upstream.read_timeout
        if now < deadline:
            self._arm(deadline)
            return
        timeout = self.upstream.read_timeout
        if self.tunnel:
            client = self.client
            self.ex = self.client = None
            self.close()
            if client is not None:
                client.end_tunnel()
            return
        if ex.response_started:
            message = f"target stopped sending the rest of the response for {timeout:g}s"
            self._fail(ProxyError(Source.UPSTREAM, 504, message))
        else:
            message = f"target stopped responding for {timeout:g}s"
            self._fail(ProxyError(Source.UPSTREAM, 504, message, kind=Kind.TIMEOUT))

    def _due(self) -> float:
        """The earliest of the per-try deadlines that still apply (0: none)."""
        head, total = self._head_due, self._try_due
        if head and total:
            return min(head, total)
        return head or total

    def _arm(self, deadline: float) -> None:
        due = self._due()
        self.watchdog.arm(due if due and due < deadline else deadline)

    def _try_timeout(self, ex: Exchange) -> ProxyError:
        target = ex.target.name if ex.target is not None else "?"
        upstream = self.upstream
        if self._head_due and self._head_due <= self._due():
            message = (
                f"target {target} did not respond within per_try_timeout "
                f"{upstream.retry.per_try_timeout:g}s"
            )
        else:
            message = f"the try on target {target} took longer than {upstream.total_timeout:g}s"
        kind = Kind.OTHER if ex.response_started else Kind.TIMEOUT
        return ProxyError(Source.UPSTREAM, 504, message, kind=kind)


class _RetryInstead(Exception):
    """Raised from the codec callback: this response is dropped and the request retried."""

    def __init__(self, error: ProxyError) -> None:
        super().__init__(error.message)
        self.error = error
