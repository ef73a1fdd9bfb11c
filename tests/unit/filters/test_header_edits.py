"""HeaderEdits: remove, then set (replace), then add, applied as the engine applies them:
to a raw header block, by `removal_pattern()` and `lines()`."""

import pytest

from bascule.filters.header_edits import HeaderEdits


def edited(edits: HeaderEdits, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The header list after `edits`, through the raw-bytes path the proxy uses."""
    block = b"".join(b"\r\n" + name + b": " + value for name, value in headers)
    pattern = edits.removal_pattern()
    if pattern is not None:
        block = pattern.sub(b"", block)
    block += edits.lines()
    lines = block.split(b"\r\n")[1:]
    return [(name, value) for name, _, value in (line.partition(b": ") for line in lines)]


def test_remove_drops_every_header_of_that_name_in_any_case() -> None:
    headers = [(b"X-Debug", b"1"), (b"Host", b"a"), (b"x-debug", b"2"), (b"X-DEBUG", b"3")]
    assert edited(HeaderEdits(remove=["x-Debug"]), headers) == [(b"Host", b"a")]


def test_set_replaces_all_existing_values_with_one() -> None:
    headers = [(b"x-env", b"dev"), (b"Accept", b"*/*"), (b"X-Env", b"test")]
    assert edited(HeaderEdits(set={"X-Env": "prod"}), headers) == [
        (b"Accept", b"*/*"),
        (b"X-Env", b"prod"),
    ]


def test_set_adds_the_header_when_absent() -> None:
    headers = [(b"Accept", b"*/*")]
    assert edited(HeaderEdits(set={"X-Frame-Options": "DENY"}), headers) == [
        (b"Accept", b"*/*"),
        (b"X-Frame-Options", b"DENY"),
    ]


def test_add_appends_and_keeps_existing_values() -> None:
    headers = [(b"Via", b"1.1 a")]
    assert edited(HeaderEdits(add={"Via": "1.1 bascule"}), headers) == [
        (b"Via", b"1.1 a"),
        (b"Via", b"1.1 bascule"),
    ]


def test_remove_runs_before_add_so_a_removed_name_can_be_added_back() -> None:
    headers = [(b"X-A", b"old")]
    assert edited(HeaderEdits(add={"X-A": "new"}, remove=["X-A"]), headers) == [(b"X-A", b"new")]


def test_set_runs_before_add_so_both_values_remain() -> None:
    headers = [(b"X-A", b"old")]
    assert edited(HeaderEdits(set={"X-A": "one"}, add={"x-a": "two"}), headers) == [
        (b"X-A", b"one"),
        (b"x-a", b"two"),
    ]


def test_remove_and_add_together() -> None:
    headers = [(b"X-Debug", b"1"), (b"Host", b"a")]
    edits = HeaderEdits(remove=["X-Debug"], add={"X-B": "2"})
    assert edited(edits, headers) == [(b"Host", b"a"), (b"X-B", b"2")]


def test_untouched_headers_keep_their_order() -> None:
    headers = [(b"A", b"1"), (b"B", b"2"), (b"X-Drop", b"x"), (b"C", b"3")]
    assert edited(HeaderEdits(remove=["X-Drop"]), headers) == [
        (b"A", b"1"),
        (b"B", b"2"),
        (b"C", b"3"),
    ]


def test_values_are_encoded_as_utf8_literals() -> None:
    headers: list[tuple[bytes, bytes]] = []
    assert edited(HeaderEdits(set={"X-Team": "café {host}"}), headers) == [
        (b"X-Team", "café {host}".encode())
    ]


def test_empty_edits_cost_nothing_and_change_nothing() -> None:
    for empty in (HeaderEdits(), HeaderEdits(set={}, add={}, remove=[])):
        assert empty.removal_pattern() is None
        assert empty.lines() == b""
        assert edited(empty, [(b"A", b"1")]) == [(b"A", b"1")]
    assert HeaderEdits(remove=["X-Debug"]).removal_pattern() is not None
    assert HeaderEdits(add={"X-A": "1"}).lines() != b""


@pytest.mark.parametrize("name", ["", "X Env", "X-Env:", "Ünicode", "X\r\nEvil"])
def test_invalid_header_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="not a header name"):
        HeaderEdits(set={name: "1"})
    with pytest.raises(ValueError, match="not a header name"):
        HeaderEdits(remove=[name])


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\nb", "a\0b"])
def test_values_that_could_inject_headers_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="line break or NUL"):
        HeaderEdits(add={"X-A": value})


# --- raw header-block form, for an engine that edits the head as bytes ------------------


def test_lines_are_set_then_added_headers_as_raw_lines() -> None:
    edits = HeaderEdits(set={"X-Env": "prod"}, add={"Via": "1.1 b"})
    assert edits.lines() == b"\r\nX-Env: prod\r\nVia: 1.1 b"
    assert HeaderEdits(remove=["X-A"]).lines() == b""


def test_removal_pattern_drops_removed_and_set_names_in_any_case() -> None:
    pattern = HeaderEdits(set={"X-Env": "prod"}, remove=["X-Debug"]).removal_pattern()
    assert pattern is not None
    block = b"\r\nHost: a\r\nx-debug: 1\r\nX-ENV: dev\r\nX-Debug-Extra: keep\r\nAccept: */*"
    assert pattern.sub(b"", block) == b"\r\nHost: a\r\nX-Debug-Extra: keep\r\nAccept: */*"


def test_removal_pattern_is_none_when_nothing_is_dropped() -> None:
    assert HeaderEdits(add={"Via": "b"}).removal_pattern() is None
