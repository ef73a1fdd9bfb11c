"""Health of an upstream's targets: active checks (`health:`) and passive outlier detection
(`outlier_detection:`).

Active checks ask each target directly, on a timer, with an HTTP request or a TCP connect;
outlier detection watches the requests the proxy sends and ejects a target that keeps
failing them. Either, both or neither may be configured per upstream.
"""

import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, model_validator

from bascule.config.section import Section
from bascule.config.syntax import HeaderName, HeaderValue, Method, is_hostname
from bascule.config.units import Duration

__all__ = [
    "Health",
    "HealthHttp",
    "HealthTcp",
    "OutlierDetection",
    "parse_jitter",
    "parse_statuses",
]

_STATUS_SYNTAX = 'statuses like "200-399", "200,204", "2xx" or "2xx,404"'
_STATUS_PART = re.compile(r"(\d{3})(?:-(\d{3}))?|([1-5])xx")


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """Inclusive status ranges from "200-399", "200,204", "2xx" or a mix ("2xx,404")."""
    ranges = []
    for raw in text.split(","):
        part = raw.strip().lower()
        match = _STATUS_PART.fullmatch(part)
        if match is None:
            raise ValueError(f"{raw.strip()!r} is not a status or range; expected {_STATUS_SYNTAX}")
        if match.group(3) is not None:
            low = int(match.group(3)) * 100
            ranges.append((low, low + 99))
            continue
        low = int(match.group(1))
        high = int(match.group(2) or low)
        for status in (low, high):
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status (100-599)")
        if high < low:
            raise ValueError(f"{part!r}: a range goes from low to high, like {high}-{low}")
        ranges.append((low, high))
    return tuple(ranges)


def _check_statuses(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # expect_status: 200
    if isinstance(value, str):
        parse_statuses(value)
    return value


def parse_jitter(value: object) -> float:
    """A share of the interval: "10%" or a bare number of percent (10); 0-50%."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage like 10%, got {value!r}")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            percent = float(text)
        except ValueError:
            raise ValueError(f"expected a percentage like 10%, got {value!r}") from None
    elif isinstance(value, int | float):
        percent = float(value)
    else:
        raise ValueError(f"expected a percentage like 10%, got {value!r}")
    if not 0.0 <= percent <= 50.0:  # also refuses NaN
        raise ValueError(f"jitter is a share of the interval from 0% to 50%, got {value!r}")
    return percent


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None
    return pattern


def _absolute(path: str) -> str:
    if not path.startswith("/") or not all("!" <= c <= "~" for c in path):
        raise ValueError(
            f"a path starts with '/' and is printable ASCII without spaces (percent-encode "
            f"the rest), got {path!r}"
        )
    return path


def _host(value: str) -> str:
    if value.startswith("["):  # [::1] or [::1]:8080
        name, _, port = value[1:].partition("]")
        port = port.removeprefix(":") if port.startswith(":") else port or ""
        valid = ":" in name and is_hostname(name) and (not port or port.isdigit())
    else:
        name, _, port = value.partition(":")
        valid = is_hostname(name) and (not port or port.isdigit()) and ":" not in port
    if not valid:
        raise ValueError(f"{value!r} is not a host name with an optional :port")
    return value


Statuses = Annotated[
    str,
    BeforeValidator(_check_statuses),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 100, "maximum": 599}],
            "examples": ["200-399", "200,204", "2xx", 200],
        }
    ),
]
Jitter = Annotated[
    float,
    BeforeValidator(parse_jitter),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
                {"type": "number", "minimum": 0, "maximum": 50},
            ],
            "description": "A share of the interval, in percent.",
            "examples": ["10%", "0%"],
        }
    ),
]


class HealthHttp(Section):
    """An HTTP check: one request per check on a fresh connection (Connection: close)."""

    method: Method = Field(default="GET", description="The request method.")
    path: Annotated[str, AfterValidator(_absolute)] = Field(
        default="/healthz", description="The request target, with any query."
    )
    host: Annotated[str, AfterValidator(_host)] | None = Field(
        default=None, description="The Host header; none: the target's host:port."
    )
    expect_status: Statuses = Field(
        default="200-399",
        description='Statuses that pass: "200-399", "200,204", "2xx", or a mix.',
    )
    expect_body: Annotated[str, AfterValidator(_compile)] | None = Field(
        default=None,
        description="A regular expression the body (its first 64KiB) must contain to pass.",
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="Extra request headers."
    )

    @property
    def statuses(self) -> tuple[tuple[int, int], ...]:
        """`expect_status` as inclusive ranges."""
        return parse_statuses(self.expect_status)

    @model_validator(mode="after")
    def _own_headers(self) -> Self:
        for name in self.headers:
            if name.lower() in ("host", "connection", "content-length", "transfer-encoding"):
                raise ValueError(
                    f"headers: {name} is set by the check itself"
                    + ("; use `host` to change it" if name.lower() == "host" else "")
                )
        return self


class HealthTcp(Section):
    """A TCP check: the target passes if it accepts a connection within the timeout."""


class Health(Section):
    """Active health checks: exactly one of `http` and `tcp`."""

    http: HealthHttp | None = None
    tcp: HealthTcp | None = None
    interval: Duration = Field(
        default=5.0, gt=0, description="Time between the end of one check and the next."
    )
    timeout: Duration = Field(
        default=2.0, gt=0, description="A check that takes longer (connect to last byte) fails."
    )
    jitter: Jitter = Field(
        default=10.0,
        json_schema_extra={"default": "10%"},
        description="Each interval is drawn at random within ± this share of it (0-50%), so "
        "checks of many targets spread out.",
    )
    healthy: int = Field(
        default=2, ge=1, le=100, description="Passing checks in a row that bring a target up."
    )
    unhealthy: int = Field(
        default=3, ge=1, le=100, description="Failed checks in a row that take a target down."
    )
    initial: Literal["unknown", "up", "down"] = Field(
        default="unknown",
        description="A target's state before its checks say otherwise. unknown: it takes "
        "traffic and its first check decides; up: it needs `unhealthy` failures to go down; "
        "down: it takes no traffic until `healthy` checks pass.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.http is None) == (self.tcp is None):
            found = "it has both" if self.http is not None else "it has neither"
            raise ValueError(
                "health needs exactly one of http and tcp; "
                f"{found} (for example `http: {{path: /healthz}}` or `tcp: {{}}`)"
            )
        return self


class OutlierDetection(Section):
    """Passive checks: eject a target that fails requests in a row, for a growing time."""

    consecutive_failures: int = Field(
        default=5,
        ge=1,
        description="Failed requests in a row (connect failure, timeout, reset, 5xx) that "
        "eject a target.",
    )
    base_ejection: Duration = Field(
        default=30.0, gt=0, description="The first ejection's length; the nth lasts n times it."
    )
    max_ejection: Duration = Field(
        default=300.0, gt=0, description="The longest an ejection lasts."
    )
    max_ejected_percent: int = Field(
        default=50,
        ge=0,
        le=100,
        description="Never eject a target if that would leave more than this share of the "
        "upstream's targets ejected.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_ejection < self.base_ejection:
            raise ValueError("max_ejection is shorter than base_ejection; make it at least as long")
        return self
