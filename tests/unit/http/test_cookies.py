"""Reading cookies and query arguments out of raw header values."""

import pytest

from bascule.http.cookies import cookie_value, query_arg, set_cookie_pair


@pytest.mark.parametrize(
    ("header", "name", "expected"),
    [
        (b"a=1; b=2", b"b", b"2"),
        (b"a=1;b=2", b"a", b"1"),
        (b'sid="quoted"; x=y', b"sid", b"quoted"),
        (b"a=1; a=2", b"a", b"1"),  # the first (most specific) wins
        (b"A=1", b"a", None),  # names are case-sensitive
        (b"flag; a=1", b"flag", None),  # no "=": not a cookie pair
        (b"a=", b"a", b""),
        (b"", b"a", None),
    ],
)
def test_cookie_value(header, name, expected):
    assert cookie_value(header, name) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"JSESSIONID=abc123; Path=/; HttpOnly", (b"JSESSIONID", b"abc123")),
        (b'sid="v"', (b"sid", b"v")),
        (b"=nameless", None),
        (b"garbage", None),
    ],
)
def test_set_cookie_pair(header, expected):
    assert set_cookie_pair(header) == expected


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        (b"id=7&x=1", b"id", b"7"),
        (b"x=1&id=7&id=8", b"id", b"7"),
        (b"debug&id=1", b"debug", b""),
        (b"ids=1", b"id", None),
        (b"", b"id", None),
    ],
)
def test_query_arg(query, name, expected):
    assert query_arg(query, name) == expected
