"""How an upstream rides out failing or saturated targets: retries (with a budget), and
limits on connections per target with a queue in front of them."""

from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from bascule.config.section import Section
from bascule.config.units import Duration, Size

__all__ = ["IDEMPOTENT_METHODS", "Retries"]

IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE")
RetryOn = Literal["connect_failure", "timeout", "reset", 500, 502, 503, 504]


def _percent(value: object) -> object:
    """20% or 0.2 -> 0.2."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage like 20%, got {value!r}") from None
    return value


Ratio = Annotated[float, BeforeValidator(_percent)]


def _connect_failure_only() -> list[RetryOn]:
    return ["connect_failure"]


class Retries(Section):
    """When a failed try is sent again, to another target."""

    attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Tries in all, the first included; 1 turns retries off.",
    )
    on: list[RetryOn] = Field(
        default_factory=_connect_failure_only,
        description="What is retried: connect_failure, timeout, reset, 500, 502, 503, 504.",
    )
    methods: list[str] = Field(
        default_factory=lambda: list(IDEMPOTENT_METHODS),
        description="Methods retried once the request reached a target (a connect failure "
        "is retried for any method: nothing was sent).",
    )
    per_try_timeout: Duration | None = Field(
        default=None, description="A try that has no response head after this is a timeout."
    )
    budget: Ratio = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Retries stay under this share of recent requests (plus a few per "
        "second), so a brown-out does not become a retry storm.",
    )
    replay_buffer: Size = Field(
        default=64 * 1024,
        ge=0,
        description="A request body is kept for a retry up to this size; a larger one is "
        "never retried once sent.",
    )

    @model_validator(mode="after")
    def _methods_upper(self) -> Self:
        for method in self.methods:
            if not method.isascii() or not method.isalpha() or method != method.upper():
                raise ValueError(f"methods are upper-case tokens like GET; got {method!r}")
        return self
