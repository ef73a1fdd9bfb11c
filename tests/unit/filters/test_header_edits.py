"""HeaderEdits: remove, then set (replace), then add, on a header list in place."""

import pytest

from bascule.filters.header_edits import HeaderEdits


def test_remove_drops_every_header_of_that_name_in_any_case() -> None:
    headers = [(b"X-Debug", b"1"), (b"Host", b"a"), (b"x-debug", b"2"), (b"X-DEBUG", b"3")]
    HeaderEdits(remove=["x-Debug"]).apply(headers)
    assert headers == [(b"Host", b"a")]


def test_set_replaces_all_existing_values_with_one() -> None:
    headers = [(b"x-env", b"dev"), (b"Accept", b"*/*"), (b"X-Env", b"test")]
    HeaderEdits(set={"X-Env": "prod"}).apply(headers)
    assert headers == [(b"Accept", b"*/*"), (b"X-Env", b"prod")]


def test_set_adds_the_header_when_absent() -> None:
    headers = [(b"Accept", b"*/*")]
    HeaderEdits(set={"X-Frame-Options": "DENY"}).apply(headers)
    assert headers == [(b"Accept", b"*/*"), (b"X-Frame-Options", b"DENY")]


def test_add_appends_and_keeps_existing_values() -> None:
    headers = [(b"Via", b"1.1 a")]
    HeaderEdits(add={"Via": "1.1 bascule"}).apply(headers)
    assert headers == [(b"Via", b"1.1 a"), (b"Via", b"1.1 bascule")]


def test_remove_runs_before_add_so_a_removed_name_can_be_added_back() -> None:
    headers = [(b"X-A", b"old")]
    HeaderEdits(add={"X-A": "new"}, remove=["X-A"]).apply(headers)
    assert headers == [(b"X-A", b"new")]


def test_set_runs_before_add_so_both_values_remain() -> None:
    headers = [(b"X-A", b"old")]
    HeaderEdits(set={"X-A": "one"}, add={"x-a": "two"}).apply(headers)
    assert headers == [(b"X-A", b"one"), (b"x-a", b"two")]


def test_apply_mutates_the_same_list_object() -> None:
    headers = [(b"X-Debug", b"1"), (b"Host", b"a")]
    same = headers
    HeaderEdits(remove=["X-Debug"], add={"X-B": "2"}).apply(headers)
    assert same is headers
    assert headers == [(b"Host", b"a"), (b"X-B", b"2")]


def test_apply_leaves_untouched_headers_in_order() -> None:
    headers = [(b"A", b"1"), (b"B", b"2"), (b"X-Drop", b"x"), (b"C", b"3")]
    HeaderEdits(remove=["X-Drop"]).apply(headers)
    assert headers == [(b"A", b"1"), (b"B", b"2"), (b"C", b"3")]


def test_values_are_encoded_as_utf8_literals() -> None:
    headers: list[tuple[bytes, bytes]] = []
    HeaderEdits(set={"X-Team": "café {host}"}).apply(headers)
    assert headers == [(b"X-Team", "café {host}".encode())]


def test_names_touched_are_lower_case_names_of_every_edit() -> None:
    edits = HeaderEdits(set={"X-Env": "prod"}, add={"Via": "b"}, remove=["X-Debug"])
    assert edits.names_touched() == frozenset({b"x-env", b"via", b"x-debug"})


def test_is_empty_only_without_any_edit() -> None:
    assert HeaderEdits().is_empty
    assert HeaderEdits(set={}, add={}, remove=[]).is_empty
    assert not HeaderEdits(remove=["X-Debug"]).is_empty
    assert not HeaderEdits(add={"X-A": "1"}).is_empty


def test_empty_edits_change_nothing() -> None:
    headers = [(b"A", b"1")]
    HeaderEdits().apply(headers)
    assert headers == [(b"A", b"1")]


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


def test_raw_form_agrees_with_apply() -> None:
    edits = HeaderEdits(set={"X-Env": "prod"}, add={"Via": "b"}, remove=["X-Debug"])
    headers = [(b"Host", b"a"), (b"X-Debug", b"1"), (b"x-env", b"dev")]
    raw = b"".join(b"\r\n" + name + b": " + value for name, value in headers)
    pattern = edits.removal_pattern()
    assert pattern is not None
    edits.apply(headers)
    assert pattern.sub(b"", raw) + edits.lines() == b"".join(
        b"\r\n" + name + b": " + value for name, value in headers
    )
