"""Durations and sizes as operators write them ("250ms", "1m30s", "16KiB").

The engine wants plain numbers (float seconds, int bytes); people want units. These
parsers sit between the two, and `Duration` / `Size` plug them into the models so a
field declared `Duration` accepts either spelling and always holds a number.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

__all__ = [
    "Duration",
    "Size",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

# Largest first: the order a compound duration must be written in ("1h30m", never "30m1h").
_DURATION_UNITS: dict[str, Decimal] = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_SYNTAX = "a duration like 250ms, 10s, 5m, 1h or 1m30s, or a number of seconds"

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_SIZE_SYNTAX = "a size like 512B, 16KiB, 10MiB, 1GiB or 100KB, or a number of bytes"


def _number(value: object) -> Decimal | None:
    """A YAML/JSON number as an exact Decimal; None for anything that is not one.

    bool is excluded on purpose: YAML reads `yes` as True, and True is not 1 second.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def parse_duration(value: object) -> float:
    """Seconds from a duration string or a bare number of seconds.

    Parts are summed exactly (Decimal) so "1m30s250ms" equals 90.25 to the last bit.
    """
    number = _number(value)
    if number is None and isinstance(value, str):
        text = value.strip()
        magnitude = text.removeprefix("-")
        number = _decimal_or_none(magnitude)
        if number is None:
            number = _parse_duration_text(magnitude)
        if number is not None and magnitude != text:
            number = -number
    if number is None:
        raise ValueError(f"expected {_DURATION_SYNTAX}, got {value!r}")
    if number < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return float(number)


def _decimal_or_none(text: str) -> Decimal | None:
    if not re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return None
    return Decimal(text)


def _parse_duration_text(text: str) -> Decimal | None:
    parts = list(_DURATION_PART.finditer(text))
    if not parts or "".join(part.group(0) for part in parts) != text:
        return None
    units = [part.group(2) for part in parts]
    order = list(_DURATION_UNITS)
    if units != sorted(set(units), key=order.index):
        raise ValueError(f"write each unit once, largest first (like 1h30m or 1m30s), got {text!r}")
    return sum(
        (Decimal(part.group(1)) * _DURATION_UNITS[part.group(2)] for part in parts),
        Decimal(0),
    )


def format_duration(seconds: float) -> str:
    """The canonical spelling of a duration, to the millisecond ("1m30s", "250ms", "0s")."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds!r}")
    remaining = int((Decimal(repr(seconds)) * 1000).to_integral_value())
    parts = []
    for unit, size in _DURATION_UNITS.items():
        per_unit = int(size * 1000)
        count, remaining = divmod(remaining, per_unit)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_size(value: object) -> int:
    """Bytes from a size string (SI "KB" = 1000, IEC "KiB" = 1024) or a bare number of bytes."""
    number = _number(value)
    if number is None and isinstance(value, str):
        text = value.strip()
        number = _decimal_or_none(text)
        match = _SIZE.fullmatch(text.lower())
        if number is None and match and match.group(2) in _SIZE_UNITS:
            number = Decimal(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if number is None:
        raise ValueError(f"expected {_SIZE_SYNTAX}, got {value!r}")
    if number < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    if number != number.to_integral_value():
        raise ValueError(f"a size must be a whole number of bytes, got {value!r}")
    return int(number)


def format_size(size: int) -> str:
    """The shortest exact IEC spelling of a size ("16KiB", "100MiB", "1000B")."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        per_unit = _SIZE_UNITS[unit.lower()]
        if size and size % per_unit == 0:
            return f"{size // per_unit}{unit}"
    return f"{size}B"


# The syntax lives on the anyOf branches because a field's own description (its meaning)
# replaces the type's description in the generated schema.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "Seconds."},
                {
                    "type": "string",
                    "pattern": r"^(\d+(\.\d+)?(h|m|s|ms))+$",
                    "description": f"Duration: {_DURATION_SYNTAX}.",
                },
            ],
            "examples": ["250ms", "10s", "5m", "1m30s", 30],
        }
    ),
]
"""Seconds as a float; YAML may spell it "250ms", "10s", "5m", "1h", "1m30s" or 2.5."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "description": "Bytes."},
                {
                    "type": "string",
                    "pattern": r"^\d+(\.\d+)?\s*([KkMmGgTt][Ii]?)?[Bb]$",
                    "description": f"Size: {_SIZE_SYNTAX}.",
                },
            ],
            "examples": ["16KiB", "10MiB", "1GiB", "512B", 65536],
        }
    ),
]
"""Bytes as an int; YAML may spell it "512B", "16KiB", "10MiB", "100KB" or 65536."""
