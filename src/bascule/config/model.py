"""The root of the config file: process settings and the three named sections.

Listeners, routes and upstreams refer to each other by name; those references are
checked after validation by `bascule.config.checks`, which can point at the exact key.
"""

import ipaddress
import os
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from bascule.config.address import Address, BindAddress, Cidr
from bascule.config.listener import Listener
from bascule.config.route import Route
from bascule.config.section import Section
from bascule.config.syntax import Name
from bascule.config.units import Duration
from bascule.config.upstream import Upstream

__all__ = ["AccessLog", "Admin", "Config", "Tracing", "default_state_dir"]


def default_state_dir() -> str:
    """$XDG_STATE_HOME/bascule, or ~/.local/state/bascule (the XDG default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "bascule")


class Admin(Section):
    """The admin API, /metrics and the dashboard."""

    # The schema would show a dataclass default as {host, port}; show what YAML takes.
    bind: Address = Field(
        default=BindAddress("127.0.0.1", 9090), json_schema_extra={"default": "127.0.0.1:9090"}
    )
    token_file: str | None = Field(
        default=None,
        description="A file holding the bearer token every admin request must carry. "
        "Required when bind is not a loopback address.",
    )

    @model_validator(mode="after")
    def _token_off_loopback(self) -> Self:
        if self.token_file is None and not _loopback(self.bind.host):
            raise ValueError(
                f"admin.bind {self.bind} is reachable from other machines: set "
                "admin.token_file (a file holding a bearer token), or bind 127.0.0.1"
            )
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve anywhere


class AccessLog(Section):
    """One line per request."""

    enabled: bool = True
    path: str = Field(default="-", description='"-" for stdout, otherwise a file path.')
    format: Literal["json", "combined"] = Field(
        default="json", description="json: one object per line; combined: nginx's format."
    )


class Tracing(Section):
    """Spans of sampled requests to an OpenTelemetry collector (the `otel` extra)."""

    otlp_endpoint: str = Field(
        description="The collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces."
    )
    service_name: str = Field(default="bascule", description="service.name of the spans.")


class Config(Section):
    """A whole config file."""

    workers: int | Literal["auto"] = Field(
        default=1, description="Worker processes; auto = one per CPU.", union_mode="left_to_right"
    )
    admin: Admin | None = None
    access_log: AccessLog = AccessLog()
    request_ids: bool = Field(
        default=True,
        description="X-Request-Id on every request and response, traceparent carried on.",
    )
    tracing: Tracing | None = Field(
        default=None, description="Export spans of sampled requests over OTLP; off when absent."
    )
    drain_timeout: Duration = Field(
        default=30.0,
        description="On stop or reload, how long in-flight requests may take to finish.",
    )
    trusted_proxies: list[Cidr] = Field(
        default_factory=list,
        description="Peers whose X-Forwarded-For / Forwarded is believed about the client "
        "address (for logs, ip_hash, geo and sticky source_ip); nobody else's is.",
    )
    state_dir: str = Field(
        default_factory=default_state_dir,
        description="Where Bascule keeps what must survive a restart (the sticky-cookie "
        "secret when none is given).",
        json_schema_extra={"default": "$XDG_STATE_HOME/bascule or ~/.local/state/bascule"},
    )
    listeners: list[Listener] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)
    upstreams: dict[Name, Upstream] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tracing_needs_ids(self) -> Self:
        if self.tracing is not None and not self.request_ids:
            raise ValueError(
                "tracing follows the traceparent Bascule carries on, which request_ids: false "
                "turns off; remove one of them"
            )
        return self

    @field_validator("workers", mode="before")
    @classmethod
    def _positive_or_auto(cls, value: object) -> object:
        # One clear message instead of one per member of the union.
        if value == "auto" or (type(value) is int and value >= 1):
            return value
        raise ValueError(f"expected a whole number of at least 1, or auto; got {value!r}")
