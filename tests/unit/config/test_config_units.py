import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.config import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m15s500ms", 5415.5),
        ("1.5s", 1.5),
        (" 10s ", 10.0),
        ("0", 0.0),
        ("42", 42.0),
        (30, 30.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_durations_accept_units_and_bare_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("-5s", "cannot be negative"),
        (-1, "cannot be negative"),
        ("ten seconds", "expected a duration like 250ms"),
        ("10 s", "expected a duration"),
        ("5d", "expected a duration"),
        ("30s1m", "largest first"),
        ("1m1m", "largest first"),
        ("", "expected a duration"),
        (True, "expected a duration"),
        (None, "expected a duration"),
        (float("nan"), "expected a duration"),
        (float("inf"), "expected a duration"),
    ],
)
def test_durations_reject_garbage_with_the_syntax_in_the_message(
    value: object, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (90, "1m30s"), (3600, "1h"), (5415.5, "1h30m15s500ms")],
)
def test_durations_format_canonically(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**10))
def test_duration_format_then_parse_round_trips_to_the_millisecond(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(
    st.tuples(*(st.integers(min_value=0, max_value=999) for _ in range(4))).filter(any),
)
def test_any_compound_duration_parses_to_its_canonical_form(parts: tuple[int, ...]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in zip(parts, ("h", "m", "s", "ms"), strict=True) if n)
    seconds = parse_duration(text)
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16KiB", 16 * 1024),
        ("10MiB", 10 * 1024**2),
        ("1GiB", 1024**3),
        ("512B", 512),
        ("100KB", 100_000),
        ("2MB", 2_000_000),
        ("16 kib", 16 * 1024),
        ("1.5KiB", 1536),
        ("4096", 4096),
        (65536, 65536),
        (0, 0),
    ],
)
def test_sizes_accept_si_and_iec_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("16K", "expected a size like"),
        ("lots", "expected a size like"),
        ("-1", "cannot be negative"),
        (-5, "cannot be negative"),
        ("0.5B", "whole number of bytes"),
        (1.5, "whole number of bytes"),
        (False, "expected a size"),
    ],
)
def test_sizes_reject_garbage(value: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_size(value)


@given(st.integers(min_value=0, max_value=2**50))
def test_size_format_then_parse_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size
