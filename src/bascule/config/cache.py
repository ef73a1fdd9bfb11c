"""The `cache:` filter of a route: where responses are stored and under which key."""

import string
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from bascule.config.section import Section
from bascule.config.units import Duration, Size

__all__ = ["KEY_PLACEHOLDERS", "Cache", "RedisStore"]

KEY_PLACEHOLDERS = ("scheme", "host", "path", "query")


def _key_template(template: str) -> str:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"not a key template: {error}") from None
    unknown = sorted(set(names) - set(KEY_PLACEHOLDERS))
    if unknown:
        known = ", ".join("{" + n + "}" for n in KEY_PLACEHOLDERS)
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; a key may use {known}")
    if "path" not in names:
        raise ValueError("a key must include {path}, or every page would share one entry")
    return template


class RedisStore(Section):
    """A Redis server shared by every worker and node (store: redis)."""

    url: str = Field(default="redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL.")
    prefix: str = Field(default="bascule:", description="Put before every key in Redis.")
    timeout: Duration = Field(
        default=0.5,
        description="A read or write that takes longer is a miss; the cache is bypassed.",
    )


class Cache(Section):
    """Store the upstream's cacheable responses and answer from them (RFC 9111)."""

    store: Literal["memory", "redis"] = Field(
        default="memory", description="memory: per worker process; redis: shared by all."
    )
    max_size: Size = Field(default=256 * 1024 * 1024, description="Bytes the memory store holds.")
    max_object: Size = Field(
        default=8 * 1024 * 1024, description="Larger responses stream through, not stored."
    )
    key: Annotated[str, AfterValidator(_key_template)] = Field(
        default="{scheme}://{host}{path}{query}",
        description="Primary key: {scheme}, {host} (lower-case), {path}, {query} ('?...' or '').",
    )
    collapse_timeout: Duration = Field(
        default=5.0, description="How long concurrent misses wait for the first one's response."
    )
    redis: RedisStore = RedisStore()
