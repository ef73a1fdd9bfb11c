"""Sticky sessions on an upstream (`sticky:`): keep a client on the target it started with.

Exactly one method per upstream:

- `cookie`: Bascule sets a signed cookie naming the target (no shared state between nodes
  that share `secret_file`);
- `header`: requests with the same value of a header go to the same target;
- `source_ip`: requests from the same client address go to the same target;
- `learn`: remember which target set the application's own session cookie.

`header` and `source_ip` place values on a consistent-hash ring, so adding or removing a
target moves only its share of sessions.
"""

from typing import Literal, Self

from pydantic import Field, model_validator

from bascule.config.section import Section
from bascule.config.syntax import HeaderName
from bascule.config.units import Duration

__all__ = ["LearnedCookie", "Sticky", "StickyCookie"]

METHODS = ("cookie", "header", "source_ip", "learn")


class StickyCookie(Section):
    """The cookie Bascule sets; its value is an opaque, HMAC-signed name of the target."""

    name: HeaderName = Field(default="bascule_route", description="The cookie's name.")
    ttl: Duration | None = Field(
        default=None,
        description="How long the cookie (and so the stickiness) lasts; none: the browser session.",
    )
    path: str = Field(default="/", pattern=r"^/[^;\s]*$", description="The cookie's Path.")
    secure: bool = Field(default=False, description="Send it over HTTPS only.")
    http_only: bool = Field(default=True, description="Hide it from scripts.")
    same_site: Literal["strict", "lax", "none"] | None = Field(
        default="lax", description="SameSite attribute; none requires secure."
    )
    secret_file: str | None = Field(
        default=None,
        description="File holding the signing secret; give every node the same one. Without "
        "it a secret is generated once in state_dir.",
    )

    @model_validator(mode="after")
    def _none_needs_secure(self) -> Self:
        if self.same_site == "none" and not self.secure:
            raise ValueError("same_site: none needs secure: true (browsers drop it otherwise)")
        return self


class LearnedCookie(Section):
    """The application's own session cookie, learned from its Set-Cookie."""

    cookie: HeaderName = Field(description="Its name, e.g. JSESSIONID or PHPSESSID.")
    ttl: Duration = Field(
        default=3600.0, description="A session is forgotten after this idle time."
    )
    max_sessions: int = Field(
        default=100_000, ge=1, description="Sessions remembered; the least recently used go first."
    )


class Sticky(Section):
    """How an upstream keeps a client on one target: exactly one method."""

    cookie: StickyCookie | None = None
    header: HeaderName | None = Field(
        default=None, description="Requests with the same value of this header stick together."
    )
    source_ip: bool = Field(
        default=False, description="Requests from the same client address stick together."
    )
    learn: LearnedCookie | None = None

    @model_validator(mode="after")
    def _one_method(self) -> Self:
        given = [m for m in METHODS if getattr(self, m) not in (None, False)]
        if len(given) != 1:
            found = f"it has {' and '.join(given)}" if given else "it has none"
            raise ValueError(
                f"sticky needs exactly one of cookie, header, source_ip and learn; {found}"
            )
        return self
