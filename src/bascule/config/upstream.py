"""Upstreams: named groups of targets, and how Bascule talks to them."""

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from bascule.config.address import Address
from bascule.config.discovery import Nameserver, ResolveEvery, SrvName, is_ip
from bascule.config.geo import Geo
from bascule.config.hash_key import HashKey, parse_hash_key
from bascule.config.health import Health, OutlierDetection
from bascule.config.resilience import Retries
from bascule.config.section import Section
from bascule.config.sticky import Sticky
from bascule.config.syntax import HeaderName
from bascule.config.tcp import ProxyProtocolVersion
from bascule.config.tls import OptionalUpstreamTls
from bascule.config.units import Duration

__all__ = ["BALANCE_NAMES", "Balance", "Keepalive", "Target", "Upstream", "UpstreamTimeouts"]

# A Literal, not str: each algorithm joins this list when it is implemented, so a config
# naming one that does not exist fails at load instead of at traffic. The same names as
# bascule.balancing.BALANCERS (a test pins that).
Balance = Literal[
    "round_robin",
    "random",
    "least_conn",
    "power_of_two",
    "least_time",
    "ip_hash",
    "hash",
    "least_load",
    "geo",
]
BALANCE_NAMES: tuple[str, ...] = Balance.__args__  # type: ignore[attr-defined]


def _check_key(template: str) -> str:
    parse_hash_key(template)
    return template


# Optional only so that `srv` can stand instead; a target has exactly one of the two.
_TargetAddress = Annotated[
    Address | None,
    WithJsonSchema(
        {
            "type": "string",
            "description": "host:port; IPv6 in brackets. A host name is looked up in DNS "
            "and followed while Bascule runs.",
            "examples": ["10.0.0.1:8080", "app.internal:8080", "[2001:db8::1]:8080"],
        }
    ),
]


class Target(Section):
    """One backend server, or every host a DNS name lists."""

    address: _TargetAddress = Field(
        default=None,
        description="host:port; a host name stands for each address its A/AAAA records list.",
    )
    srv: SrvName | None = Field(
        default=None,
        description="Instead of address: an SRV name; its records give hosts, ports, weights.",
    )
    weight: int = Field(default=1, ge=1, le=1000, description="Relative share of requests.")
    region: str | None = Field(
        default=None, description="Locality label, e.g. eu-west; balance: geo prefers it."
    )
    priority: int = Field(
        default=0,
        ge=0,
        description="least_load: the tier, lower first; a tier spills to the next when full.",
    )
    max_load: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="least_load: the tier takes traffic while this target's load is under it.",
    )
    max_conns: int | None = Field(
        default=None,
        ge=1,
        description="This target's own limit of requests at once (overrides the upstream's).",
    )
    backup: bool = Field(
        default=False, description="Takes traffic only when every other target is down."
    )

    @model_validator(mode="after")
    def _address_or_srv(self) -> Self:
        if (self.address is None) == (self.srv is None):
            raise ValueError(
                "a target needs exactly one of `address` (host:port) and `srv` (an SRV name "
                "such as _http._tcp.example.com)"
            )
        # By value, not by presence: a dumped config holds every key, and must load back.
        if self.srv is not None and self.weight != 1:
            raise ValueError(
                "`weight` does not apply to an srv target: its SRV records give each host's "
                "weight; remove it"
            )
        return self

    @property
    def dns_name(self) -> str | None:
        """The name this target is looked up under in DNS; None for an IP address."""
        if self.srv is not None:
            return self.srv
        assert self.address is not None
        return None if is_ip(self.address.host) else self.address.host


class UpstreamTimeouts(Section):
    """How long to wait on a target before counting it as failed."""

    connect: Duration = Field(default=5.0, description="Establishing the TCP connection.")
    read: Duration = Field(
        default=60.0, description="The longest wait for the next response bytes."
    )
    send: Duration = Field(default=60.0, description="The longest wait to write request bytes.")
    total: Duration | None = Field(
        default=None,
        description="The longest a try may take, from sending the request to the last "
        "response byte; none: no limit (streams may last).",
    )


class Keepalive(Section):
    """Reuse of idle connections to targets."""

    max_idle: int = Field(
        default=64, ge=0, description="Idle connections kept per target; 0 disables."
    )
    idle_timeout: Duration = Field(
        default=60.0, description="An idle pooled connection is closed after."
    )


class Upstream(Section):
    """A named group of targets with one balancer."""

    balance: Balance = Field(default="round_robin", description="How a target is picked.")
    targets: list[Target] = Field(min_length=1)
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    keepalive: Keepalive = Keepalive()
    resolve_every: ResolveEvery = Field(
        default=None,
        description="Look hostname and srv targets up again this often; none: when their "
        "records' TTL runs out (kept between 1s and 60s).",
    )
    resolvers: list[Nameserver] = Field(
        default_factory=list,
        description="DNS servers (ip or ip:port) for hostname and srv targets; empty: the "
        "system's, from /etc/resolv.conf.",
    )
    key: Annotated[str, AfterValidator(_check_key)] | None = Field(
        default=None,
        description="hash only, and required there: what to hash, e.g. $remote_addr, $uri, "
        "$header_x_user, $cookie_sid, $arg_id, with literal text.",
    )
    bounded_load: float | None = Field(
        default=None,
        gt=1.0,
        description="hash and ip_hash: no target takes more than this times its share of "
        "the requests in flight (1.25 = 25% over).",
    )
    load_header: HeaderName = Field(
        default="X-Server-Load",
        description="least_load: the response header in which targets report their load.",
    )
    load_max_age: Duration = Field(
        default=10.0,
        description="least_load: a load report older than this no longer counts.",
    )
    slow_start: Duration = Field(
        default=0.0,
        description="A target that comes back ramps up to its full weight over this; 0 is off.",
    )
    geo: Geo | None = Field(default=None, description="balance: geo only: client regions.")
    sticky: Sticky | None = Field(
        default=None, description="Keep a client's requests on one target; see Sticky."
    )
    health: Health | None = Field(
        default=None, description="Active health checks: ask each target on a timer."
    )
    outlier_detection: OutlierDetection | None = Field(
        default=None, description="Eject a target that fails requests in a row."
    )
    retries: Retries = Field(
        default_factory=Retries, description="When a failed try is sent to another target."
    )
    max_conns: int | None = Field(
        default=None,
        ge=1,
        description="Requests one target carries at once; more wait in the queue. None: no limit.",
    )
    max_pending: int = Field(
        default=1000,
        ge=0,
        description="Requests that may wait for a target under max_conns; beyond, 503 at once.",
    )
    queue_timeout: Duration = Field(
        default=5.0, description="How long a request may wait in the queue before a 503."
    )
    proxy_protocol: ProxyProtocolVersion | None = Field(
        default=None,
        description="tcp listeners' connections: start each one to a target with a PROXY "
        "protocol header (v1 text or v2 binary) naming the client. None: send none.",
    )
    tls: OptionalUpstreamTls = Field(
        default=None,
        description="Talk TLS to the targets (https targets); true: verified against the "
        "system's CAs.",
    )

    @model_validator(mode="after")
    def _discovery_keys_need_a_name(self) -> Self:
        given = [key for key in ("resolve_every", "resolvers") if getattr(self, key)]
        if given and all(target.dns_name is None for target in self.targets):
            raise ValueError(
                f"`{given[0]}` applies to targets given by host name or srv, and every "
                "target here is an IP address; remove it"
            )
        return self

    @property
    def hash_key(self) -> HashKey | None:
        """The parsed `key` template, for the proxy to evaluate per request."""
        return None if self.key is None else parse_hash_key(self.key)
