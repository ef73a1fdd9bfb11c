"""A tiny authoritative DNS server on 127.0.0.1 (UDP) whose records a test changes while
Bascule runs. Records are built and parsed with dnslib, never with dnspython (the resolver
under test).

    dns = DnsServer()
    dns.set("app.test", "127.0.0.1", ttl=1)                    # A (AAAA for an IPv6)
    dns.set_srv("_http._tcp.app.test", (0, 3, 8081, "a.app.test"))
    dns.failing = True                                         # SERVFAIL to everything
    dns.stop()                                                 # the port is closed: refused
"""

from __future__ import annotations

import socket
import threading

from dnslib import AAAA, QTYPE, RCODE, RR, SRV, A, DNSRecord

__all__ = ["DnsServer"]


class DnsServer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._records: dict[str, list[RR]] = {}  # lower-case name without the final dot
        self._lock = threading.Lock()
        self.failing = False  # answer SERVFAIL to every query
        self.queries: list[tuple[str, str]] = []  # (name, type) asked, in order
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """For Bascule's `resolvers:`."""
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, *ips: str, ttl: int = 1) -> None:
        """Replace the A and AAAA records of `name` (none: the name stops existing)."""
        records = [
            RR(name, QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl)
            if ":" in ip
            else RR(name, QTYPE.A, rdata=A(ip), ttl=ttl)
            for ip in ips
        ]
        self._replace(name, records)

    def set_srv(self, name: str, *records: tuple[int, int, int, str], ttl: int = 1) -> None:
        """Replace the SRV records of `name`: (priority, weight, port, target host)."""
        rrs = [
            RR(name, QTYPE.SRV, rdata=SRV(priority, weight, port, target), ttl=ttl)
            for priority, weight, port, target in records
        ]
        self._replace(name, rrs)

    def _replace(self, name: str, records: list[RR]) -> None:
        with self._lock:
            self._records[name.lower().rstrip(".")] = records

    def asked(self, name: str) -> int:
        """How many queries named `name` so far."""
        with self._lock:
            return sum(1 for asked, _ in self.queries if asked == name)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                request = DNSRecord.parse(data)
            except Exception:  # not DNS: ignore it, as a real server would
                continue
            self._sock.sendto(self._answer(request).pack(), peer)

    def _answer(self, request: DNSRecord) -> DNSRecord:
        name = str(request.q.qname).lower().rstrip(".")
        qtype = request.q.qtype
        reply = request.reply()  # aa flag set: authoritative
        with self._lock:
            self.queries.append((name, QTYPE[qtype]))
            if self.failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            records = self._records.get(name)
        if not records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for record in records:
            if record.rtype == qtype:
                reply.add_answer(record)
        return reply
