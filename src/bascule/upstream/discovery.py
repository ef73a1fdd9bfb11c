"""Discovery: which targets an upstream has, followed in DNS while Bascule runs.

A config target is an IP address (used as written), a host name (`address: app:8080`, its
A or AAAA records) or an SRV name (`srv: _http._tcp.app`, its hosts, ports and weights).
Each address found becomes a target named "ip:port".

Rules:

1. An upstream's targets are its config targets' current addresses, in config order; an
   address listed twice is one target (the first listing wins).
2. A target whose address is still listed keeps its `Target` object, and with it its
   state (in flight, response times, health) and pooled connections; only its weight and
   backup flag follow the records. A target added to a running upstream starts its slow start; one
   found at startup does not.
3. A lookup that fails, or finds no address, changes nothing: the name keeps its last good
   addresses (at startup: none, so an upstream with no other target answers 503 until a
   lookup succeeds). A failure streak is logged once, and so is its end.
4. A removed target leaves the balancer at once (`Upstream.set_targets`) and is marked
   draining, so no sticky session leads back to it; requests in flight on it finish, its
   idle connections close.
5. A name is looked up again when its records' TTL runs out (kept between `TTL_FLOOR` and
   `TTL_CEILING`), or every `resolve_every` if the upstream sets it; after a failure, at
   most `RETRY_AFTER_FAILURE` later.
6. IPv4 is preferred: a name's AAAA records are used only when it has no A record (as
   Envoy's V4_PREFERRED), so a dual-stack name does not double its targets. Names in
   /etc/hosts are taken from it, before DNS, as the system resolver does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.resolver

from bascule.upstream.target import Target
from bascule.upstream.upstream import Upstream

__all__ = [
    "HOSTS_FILE",
    "LOOKUP_TIMEOUT",
    "RETRY_AFTER_FAILURE",
    "TTL_CEILING",
    "TTL_FLOOR",
    "Change",
    "DiscoveredTarget",
    "Discovery",
    "DnsFailure",
    "DnsLookup",
    "Endpoint",
    "Entry",
    "HostName",
    "HostsFile",
    "Lookup",
    "Membership",
    "ServiceName",
    "ServiceRecord",
    "Source",
    "parse_hosts",
    "reconcile",
]

log = logging.getLogger("bascule")

TTL_FLOOR = 1.0
"""Seconds: the shortest wait between lookups of a name, so a TTL of 0 is not a busy loop."""

TTL_CEILING = 60.0
"""Seconds: the longest, so a record changed under a day-long TTL is seen within a minute."""

RETRY_AFTER_FAILURE = 5.0
"""Seconds: a failed lookup is tried again this soon (or at `resolve_every`, if sooner)."""

LOOKUP_TIMEOUT = 5.0
"""Seconds one DNS query may take, every server and retry included (dnspython's lifetime).
Startup waits for DNS at most this long, twice for an srv name (its records, then its
hosts' addresses, all at once)."""

HOSTS_FILE = "/etc/hosts"

STOP_RECHECK = 0.05
"""Seconds between cancellations of a discovery task that has not ended (see `stop`)."""


class DnsFailure(Exception):
    """A lookup got no usable answer; the message says why, for the log."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address found for a config target: what a `Target` is made from."""

    ip: str
    port: int
    weight: int
    entry: int  # the index of the config target it comes from
    hostname: str | None = None  # the DNS name it was found under; None for an IP target
    backup: bool = False  # `backup: true`, or an SRV record of a higher priority value

    @property
    def name(self) -> str:
        """As `Target.name`: "ip:port", IPv6 in brackets."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One SRV record."""

    host: str
    port: int
    weight: int
    priority: int


class Lookup(Protocol):
    """DNS as discovery uses it; `DnsLookup` is the real one."""

    async def addresses(self, hostname: str) -> tuple[list[str], float]:
        """The name's IPv4 addresses (IPv6 if it has none) and their TTL; ([], 0) when it
        has neither. Raises DnsFailure when DNS gives no answer."""
        ...

    async def services(self, name: str) -> tuple[list[ServiceRecord], float]:
        """The name's SRV records and their TTL; ([], 0) when it has none."""
        ...

    async def close(self) -> None:
        """Release what cancelled lookups left behind (after the lookups have ended)."""
        ...


def parse_hosts(text: str) -> dict[str, list[str]]:
    """Name (lower case) -> addresses, in file order, from hosts-file text."""
    names: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        try:
            ip = str(ipaddress.ip_address(fields[0]))
        except ValueError:
            continue  # not an address: a malformed line, skipped as the system resolver does
        for name in fields[1:]:
            addresses = names.setdefault(name.lower().removesuffix("."), [])
            if ip not in addresses:
                addresses.append(ip)
    return names


class HostsFile:
    """The system's hosts file, read again whenever it changes."""

    def __init__(self, path: str = HOSTS_FILE) -> None:
        self._path = path
        self._stamp: int | None = None
        self._names: dict[str, list[str]] = {}

    def addresses(self, hostname: str) -> list[str]:
        try:
            stamp = os.stat(self._path).st_mtime_ns
            if stamp != self._stamp:
                with open(self._path, encoding="utf-8", errors="replace") as file:
                    self._names = parse_hosts(file.read())
                self._stamp = stamp
        except OSError:
            return []
        return self._names.get(hostname.lower().removesuffix("."), [])


def _prefer_ipv4(addresses: Sequence[str]) -> list[str]:
    v4 = [ip for ip in addresses if ":" not in ip]
    return v4 or list(addresses)


class _CancelSafeBackend:
    """dnspython's asyncio backend, except that a lookup cancelled while its socket is being
    made does not leak that socket: uvloop's create_datagram_endpoint, cancelled, leaves an
    open UDP transport behind, which then holds up the loop's close. The socket is made to
    completion (shielded) and closed instead; `settle` waits for that."""

    def __init__(self) -> None:
        self._backend: Any = dns.asyncbackend.get_backend("asyncio")  # untyped in dnspython
        self._busy: set[asyncio.Future[Any]] = set()  # sockets being made, or closed

    def name(self) -> str:
        return str(self._backend.name())

    async def make_socket(self, *args: Any, **kwargs: Any) -> Any:
        making = asyncio.ensure_future(self._backend.make_socket(*args, **kwargs))
        self._track(making)
        try:
            return await asyncio.shield(making)
        except asyncio.CancelledError:
            making.add_done_callback(self._close_made)
            raise

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._busy.add(future)
        future.add_done_callback(self._busy.discard)

    def _close_made(self, making: asyncio.Future[Any]) -> None:
        if not making.cancelled() and making.exception() is None:
            self._track(asyncio.ensure_future(making.result().close()))

    async def settle(self) -> None:
        while self._busy:
            await asyncio.gather(*self._busy, return_exceptions=True)
        await asyncio.sleep(0)  # a transport closes on the loop's next turn

    def datagram_connection_required(self) -> bool:
        return bool(self._backend.datagram_connection_required())

    async def sleep(self, interval: float) -> None:
        await self._backend.sleep(interval)

    def get_transport_class(self) -> Any:
        return self._backend.get_transport_class()

    async def wait_for(self, awaitable: Any, timeout: float) -> Any:  # noqa: ASYNC109
        return await self._backend.wait_for(awaitable, timeout)


class DnsLookup:
    """Lookups through dnspython's asyncio resolver, no cache (TTLs are followed here).

    `nameservers`: (ip, port) pairs to ask; empty asks the system's (/etc/resolv.conf).
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = LOOKUP_TIMEOUT,
        hosts: HostsFile | None = None,
    ) -> None:
        self._hosts = hosts or HostsFile()
        self._broken: str | None = None  # why the resolver could not be set up
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        if nameservers:
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers
            ]
        else:
            try:
                self._resolver.read_resolv_conf("/etc/resolv.conf")
            except dns.resolver.NoResolverConfiguration as exc:
                self._broken = f"no DNS server to ask: /etc/resolv.conf: {exc}; set `resolvers`"
        self._resolver.lifetime = timeout
        self._resolver.cache = None
        self._backend = _CancelSafeBackend()

    async def addresses(self, hostname: str) -> tuple[list[str], float]:
        listed = self._hosts.addresses(hostname)
        if listed:
            return _prefer_ipv4(listed), TTL_CEILING
        for rdtype in ("A", "AAAA"):
            records, ttl = await self._query(hostname, rdtype)
            if records:
                return [
                    r.address
                    for r in records
                    if isinstance(r, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
                ], ttl
        return [], 0.0

    async def services(self, name: str) -> tuple[list[ServiceRecord], float]:
        records, ttl = await self._query(name, "SRV")
        found = [
            ServiceRecord(r.target.to_text(omit_final_dot=True), r.port, r.weight, r.priority)
            for r in records
            if isinstance(r, dns.rdtypes.IN.SRV.SRV)
            and r.target != dns.name.root  # "." : the service is not offered here
        ]
        return found, ttl

    async def close(self) -> None:
        await self._backend.settle()

    async def _query(self, name: str, rdtype: str) -> tuple[list[Any], float]:
        if self._broken is not None:
            raise DnsFailure(self._broken)
        try:
            answer = await self._resolver.resolve(
                name,
                rdtype,
                search=True,
                raise_on_no_answer=False,
                backend=cast(Any, self._backend),
            )
        except dns.resolver.NXDOMAIN:
            return [], 0.0
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsFailure(f"{rdtype} {name}: {exc}") from None
        if answer.rrset is None:
            return [], 0.0
        return list(answer.rrset), float(answer.rrset.ttl)


class Source(Protocol):
    """A config target that is looked up: what it is called, and how to find its addresses."""

    @property
    def name(self) -> str: ...

    async def resolve(self, lookup: Lookup) -> tuple[tuple[Endpoint, ...], float]:
        """Its addresses now and their TTL; raises DnsFailure."""
        ...


@dataclass(frozen=True, slots=True)
class HostName:
    """`address: name:port`: every address of the name, at the port and weight written."""

    name: str
    port: int
    weight: int
    entry: int
    backup: bool = False

    async def resolve(self, lookup: Lookup) -> tuple[tuple[Endpoint, ...], float]:
        ips, ttl = await lookup.addresses(self.name)
        if not ips:
            raise DnsFailure(f"{self.name} has no A or AAAA record")
        found = (
            Endpoint(ip, self.port, self.weight, self.entry, self.name, self.backup) for ip in ips
        )
        return tuple(sorted(set(found), key=_order)), ttl


@dataclass(frozen=True, slots=True)
class ServiceName:
    """`srv: name`: the hosts, ports and weights of the name's SRV records.

    The records with the lowest priority value give the primary targets; every other record
    gives a backup target, used only when no primary can take a request (RFC 2782: a higher
    value is a stand-by; more than two levels become these two). A weight of 0 counts as 1.
    With `backup` (the config target's `backup: true`) every record gives a backup target.
    """

    name: str
    entry: int
    backup: bool = False

    async def resolve(self, lookup: Lookup) -> tuple[tuple[Endpoint, ...], float]:
        records, ttl = await lookup.services(self.name)
        if not records:
            raise DnsFailure(f"{self.name} has no SRV record")
        first = min(r.priority for r in records)
        hosts = sorted({r.host for r in records})
        answers = await asyncio.gather(
            *(lookup.addresses(host) for host in hosts), return_exceptions=True
        )
        addresses: dict[str, list[str]] = {}
        for host, answer in zip(hosts, answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer
            ips, host_ttl = answer
            if ips:
                addresses[host] = ips
                ttl = min(ttl, host_ttl)
        found = {
            Endpoint(
                ip, r.port, max(r.weight, 1), self.entry, r.host, self.backup or r.priority > first
            )
            for r in records
            for ip in addresses.get(r.host, ())
        }
        if not found:
            raise DnsFailure(f"no host that {self.name} lists has an A or AAAA record")
        return tuple(sorted(found, key=_order)), ttl


def _order(endpoint: Endpoint) -> tuple[int, int, int]:
    return (endpoint.entry, int(ipaddress.ip_address(endpoint.ip)), endpoint.port)


# -- reconciling a target set --------------------------------------------------------------


class _Tunable(Protocol):
    @property
    def name(self) -> str: ...

    weight: int
    backup: bool


T = TypeVar("T", bound=_Tunable)


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """From the current targets to the wanted ones."""

    targets: tuple[T, ...]  # the new set, in the wanted order
    added: tuple[T, ...]
    removed: tuple[T, ...]
    # (target kept, the endpoint whose weight and backup flag it takes on)
    retuned: tuple[tuple[T, Endpoint], ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retuned)


def reconcile(
    current: Sequence[T], wanted: Sequence[Endpoint], make: Callable[[Endpoint], T]
) -> Change[T]:
    """The targets for `wanted`: a current target for each address still listed (rule 2),
    `make(endpoint)` for each new one; the first endpoint of an address wins (rule 1)."""
    by_name = {target.name: target for target in current}
    targets: list[T] = []
    added: list[T] = []
    retuned: list[tuple[T, Endpoint]] = []
    seen: set[str] = set()
    for endpoint in wanted:
        name = endpoint.name
        if name in seen:
            continue
        seen.add(name)
        target = by_name.get(name)
        if target is None:
            target = make(endpoint)
            added.append(target)
        elif target.weight != endpoint.weight or target.backup != endpoint.backup:
            retuned.append((target, endpoint))
        targets.append(target)
    removed = tuple(target for target in current if target.name not in seen)
    return Change(tuple(targets), tuple(added), removed, tuple(retuned))


# -- following DNS -------------------------------------------------------------------------


class DiscoveredTarget(Target):
    """A target found in DNS; `hostname` is the name it was found under, for logs.

    Its `address` (the Host header sent when the route does not preserve the client's) is
    "hostname:port", as it was before the name was resolved: a virtual host on the target
    answers to its name, not to its IP.
    """

    __slots__ = ("hostname",)

    def __init__(self, host: str, port: int, *args: Any, hostname: str, **kwargs: Any) -> None:
        super().__init__(host, port, *args, **kwargs)
        self.hostname = hostname
        self.address = f"{hostname}:{port}".encode()

    def __repr__(self) -> str:
        return f"Target({self.name} from {self.hostname}, weight={self.weight})"


MakeTarget = Callable[[Endpoint, float | None], Target]
"""Builds the target (with its connection pool) for an endpoint; the float is the
`up_since` of its state: None at startup, now for one added later (slow start)."""


class Entry:
    """One config target and what is known of it: its last good addresses, its failure
    streak, and how long until its next lookup."""

    __slots__ = ("endpoints", "failing_since", "failures", "source", "wait")

    def __init__(self, source: Source | None, endpoints: tuple[Endpoint, ...] = ()) -> None:
        self.source = source  # None: an IP address, never looked up
        self.endpoints = endpoints  # the last good answer
        self.failures = 0  # failed lookups in a row
        self.failing_since = 0.0
        self.wait = RETRY_AFTER_FAILURE  # seconds until the next lookup


class Membership:
    """One upstream's config targets, kept in step with DNS (`Discovery.add` makes it)."""

    def __init__(
        self,
        upstream: Upstream,
        entries: Sequence[Endpoint | Source],
        make_target: MakeTarget,
        lookup: Lookup,
        resolve_every: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.upstream = upstream
        self.entries = [Entry(None, (e,)) if isinstance(e, Endpoint) else Entry(e) for e in entries]
        self._make = make_target
        self.lookup = lookup
        self._every = resolve_every
        self._clock = clock

    def _where(self, entry: Entry) -> str:
        assert entry.source is not None
        return f"upstream {self.upstream.name}: {entry.source.name}"

    async def refresh(self, entry: Entry) -> bool:
        """Look `entry` up once and set when to look again; True if its addresses changed."""
        assert entry.source is not None
        try:
            endpoints, ttl = await entry.source.resolve(self.lookup)
        except DnsFailure as failure:
            self._failed(entry, str(failure))
            return False
        if entry.failures:
            log.info(
                "%s: DNS answers again, after %d failed lookup(s) over %.1fs",
                self._where(entry),
                entry.failures,
                self._clock() - entry.failing_since,
            )
            entry.failures = 0
        entry.wait = (
            self._every if self._every is not None else min(max(ttl, TTL_FLOOR), TTL_CEILING)
        )
        if endpoints == entry.endpoints:
            return False
        log.info(
            "%s resolves to %s (next lookup in %gs)",
            self._where(entry),
            ", ".join(_describe(e) for e in endpoints),
            entry.wait,
        )
        entry.endpoints = endpoints
        return True

    def _failed(self, entry: Entry, reason: str) -> None:
        entry.wait = min(self._every or RETRY_AFTER_FAILURE, RETRY_AFTER_FAILURE)
        entry.failures += 1
        if entry.failures > 1:
            log.debug("%s: lookup failed again: %s", self._where(entry), reason)
            return
        entry.failing_since = self._clock()
        if entry.endpoints:
            log.warning(
                "%s: DNS lookup failed: %s; keeping its last known targets (%s) and trying "
                "again every %gs",
                self._where(entry),
                reason,
                ", ".join(e.name for e in entry.endpoints),
                entry.wait,
            )
        else:
            log.error(
                "%s: DNS lookup failed: %s; it adds no target to the upstream until a lookup "
                "succeeds (an upstream left without targets answers 503); trying again every %gs",
                self._where(entry),
                reason,
                entry.wait,
            )

    def apply(self, *, at_start: bool = False) -> Change[Target]:
        """Give the upstream the targets its entries now list (rules 1, 2 and 4)."""
        up_since = None if at_start else self._clock()
        wanted = [endpoint for entry in self.entries for endpoint in entry.endpoints]
        change = reconcile(
            self.upstream.targets, wanted, lambda endpoint: self._make(endpoint, up_since)
        )
        if not change:
            return change
        for target, endpoint in change.retuned:
            target.weight = endpoint.weight
            target.backup = endpoint.backup
        self.upstream.set_targets(change.targets)
        if not at_start:
            log.info(
                "upstream %s: %d target(s) now%s%s%s",
                self.upstream.name,
                len(change.targets),
                _listed("; added", change.added),
                _listed("; removed", change.removed),
                "; now " + ", ".join(_describe(e) for _, e in change.retuned)
                if change.retuned
                else "",
            )
        if not change.targets:
            log.error("upstream %s: no target: every request to it answers 503", self.upstream.name)
        return change

    async def refresh_safely(self, entry: Entry) -> bool:
        """`refresh`, with a bug logged instead of ending discovery."""
        try:
            return await self.refresh(entry)
        except Exception:
            entry.wait = RETRY_AFTER_FAILURE
            log.exception("%s: discovery failed unexpectedly", self._where(entry))
            return False

    async def follow(self, entry: Entry) -> None:
        """Look `entry` up whenever it is due, for as long as Bascule runs."""
        while True:
            await asyncio.sleep(entry.wait)
            if await self.refresh_safely(entry):
                try:
                    self.apply()
                except Exception:
                    log.exception("upstream %s: applying a DNS change failed", self.upstream.name)


def _describe(endpoint: Endpoint) -> str:
    weight = f" weight {endpoint.weight}" if endpoint.weight != 1 else ""
    return endpoint.name + weight + (" (backup)" if endpoint.backup else "")


def _listed(label: str, targets: Sequence[Target]) -> str:
    return f"{label} {', '.join(t.name for t in targets)}" if targets else ""


class Discovery:
    """Keeps upstreams' targets in step with DNS: one task per host-name or srv target."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._members: list[Membership] = []
        self._tasks: list[asyncio.Task[None]] = []

    def __bool__(self) -> bool:
        return bool(self._members)

    @property
    def members(self) -> tuple[Membership, ...]:
        return tuple(self._members)

    def add(
        self,
        upstream: Upstream,
        entries: Sequence[Endpoint | Source],
        make_target: MakeTarget,
        lookup: Lookup,
        *,
        resolve_every: float | None = None,
    ) -> Membership:
        """Follow `upstream`'s config targets, in config order: an `Endpoint` for an IP
        address (its target must already be in the upstream), a Source for a name."""
        member = Membership(upstream, entries, make_target, lookup, resolve_every, self._clock)
        self._members.append(member)
        return member

    async def start(self) -> None:
        """Look every name up once, at the same time (each within `LOOKUP_TIMEOUT`), give
        the upstreams the targets found, then follow the records in the background."""
        first = [
            member.refresh_safely(entry)
            for member in self._members
            for entry in member.entries
            if entry.source is not None
        ]
        await asyncio.gather(*first)
        for member in self._members:
            member.apply(at_start=True)
            for entry in member.entries:
                if entry.source is not None:
                    name = f"discovery {member.upstream.name} {entry.source.name}"
                    self._tasks.append(asyncio.create_task(member.follow(entry), name=name))

    async def stop(self) -> None:
        """Stop following DNS; returns when no lookup is left running."""
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            # Cancel again until each task ends: Python 3.11's asyncio.wait_for (which
            # dnspython awaits answers with) drops a cancellation that races an answer.
            _, pending = await asyncio.wait(pending, timeout=STOP_RECHECK)
        self._tasks.clear()
        for member in self._members:
            await member.lookup.close()
