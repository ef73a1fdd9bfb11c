"""The `compress:` filter of a route: which responses are compressed, and how."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from bascule.config.section import Section
from bascule.config.units import Size

__all__ = ["DEFAULT_TYPES", "Algorithm", "Compress", "Levels"]

Algorithm = Literal["zstd", "br", "gzip"]

DEFAULT_TYPES = (
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/manifest+json",
    "application/ld+json",
    "application/wasm",
    "image/svg+xml",
    "font/ttf",
    "font/otf",
)
"""Media types worth compressing: text and text-like formats. Images, video, archives and
fonts in woff/woff2 are compressed already."""

_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/(\*|[a-z0-9!#$&^_.+-]+)")


def _media_type(value: str) -> str:
    value = value.strip().lower()
    if not _MEDIA_TYPE.fullmatch(value):
        raise ValueError(f"not a media type such as text/html or text/*: {value!r}")
    return value


def _unique(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return values


class Levels(Section):
    """Compression level per algorithm: higher is smaller and slower."""

    gzip: int = Field(default=5, ge=1, le=9, description="zlib level, 1-9.")
    br: int = Field(default=4, ge=0, le=11, description="Brotli quality, 0-11.")
    zstd: int = Field(default=3, ge=1, le=19, description="Zstandard level, 1-19.")


class Compress(Section):
    """Compress responses for clients that accept it (Accept-Encoding)."""

    algorithms: Annotated[list[Algorithm], Field(min_length=1), AfterValidator(_unique)] = Field(
        default=["zstd", "br", "gzip"],
        description="Offered in this order of preference when the client's q-values tie.",
    )
    min_size: Size = Field(
        default=1024, description="Responses known to be smaller are sent as they are."
    )
    types: Annotated[
        list[Annotated[str, AfterValidator(_media_type)]],
        Field(min_length=1),
        AfterValidator(_unique),
    ] = Field(
        default=list(DEFAULT_TYPES),
        description='Content types compressed: exact, or "type/*" for a whole type.',
    )
    level: Levels = Levels()
