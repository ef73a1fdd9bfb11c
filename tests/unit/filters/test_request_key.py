"""The hash key template evaluated on real parsed requests."""

import pytest

from bascule.config.hash_key import parse_hash_key
from bascule.filters.request_key import RequestKey
from bascule.http.head import RequestHead

RAW = (
    b"GET /cart/items?id=42&x HTTP/1.1\r\nHost: shop\r\nX-User: alice\r\n"
    b"Cookie: theme=dark; sid=s-77\r\n\r\n"
)
HEAD = RequestHead(RAW, "1.1", b"GET", b"/cart/items?id=42&x")


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("$remote_addr", b"10.1.2.3"),
        ("$uri", b"/cart/items"),
        ("$header_x_user", b"alice"),
        ("$cookie_sid", b"s-77"),
        ("$arg_id", b"42"),
        ("user:${header_x_user}:$arg_id", b"user:alice:42"),
    ],
)
def test_variables(template, key):
    assert RequestKey(parse_hash_key(template))(HEAD, b"10.1.2.3") == key


def test_a_missing_value_contributes_nothing():
    assert RequestKey(parse_hash_key("$cookie_sid/$cookie_none"))(HEAD, b"") == b"s-77/"


def test_no_value_at_all_is_none_so_the_request_is_placed_at_random():
    assert RequestKey(parse_hash_key("tenant-$header_x_tenant"))(HEAD, b"") is None
