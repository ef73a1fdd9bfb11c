"""Sticky cookies: opaque, signed, expiring; learned sessions: bounded and expiring."""

import os
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from bascule.filters.sticky import LearnedSessions, StickyCookie, load_secret


@dataclass(frozen=True)
class Node:
    name: str


A, B = Node("127.0.0.1:8081"), Node("127.0.0.1:8082")
NOW = 1_800_000_000.0


def cookie(secret=b"s3cret", ttl=3600.0, targets=(A, B)):
    return StickyCookie("bascule_route", secret, targets, ttl=ttl)


def test_a_cookie_leads_back_to_its_target():
    c = cookie()
    assert c.target_of(c.value(A, NOW), NOW + 10) is A
    assert c.target_of(c.value(B, NOW), NOW + 10) is B


def test_the_value_does_not_reveal_the_address():
    value = cookie().value(A, NOW)
    assert b"127.0.0.1" not in value
    assert b"8081" not in value


def test_another_node_with_the_same_secret_honours_it():
    assert cookie().target_of(cookie().value(A, NOW), NOW) is A


def test_a_different_secret_rejects_it():
    assert cookie(secret=b"other").target_of(cookie().value(A, NOW), NOW) is None


def test_a_stale_cookie_is_ignored():
    c = cookie(ttl=60)
    value = c.value(A, NOW)
    assert c.target_of(value, NOW + 59) is A
    assert c.target_of(value, NOW + 61) is None


def test_a_session_cookie_never_goes_stale():
    c = cookie(ttl=None)
    assert c.target_of(c.value(A, NOW), NOW + 10**8) is A
    assert b"Max-Age" not in c.set_cookie_line(A, NOW)


def test_a_cookie_naming_a_removed_target_is_ignored():
    value = cookie().value(B, NOW)
    assert cookie(targets=(A,)).target_of(value, NOW) is None


def test_tampering_with_the_expiry_breaks_the_signature():
    c = cookie(ttl=60)
    token, _expiry, signature = c.value(A, NOW).split(b".")
    extended = token + b"." + b"%x" % int(NOW + 10**6) + b"." + signature
    assert c.target_of(extended, NOW + 120) is None


@given(st.binary(max_size=80))
def test_random_values_never_name_a_target(value):
    assert cookie().target_of(value, NOW) is None


def test_set_cookie_line_carries_the_attributes():
    c = StickyCookie("route", b"k", [A], ttl=3600, secure=True, http_only=True, same_site="Strict")
    line = c.set_cookie_line(A, NOW)
    assert line.startswith(b"\r\nSet-Cookie: route=")
    assert line.endswith(b"; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict")


def test_secret_is_made_once_private_and_reused(tmp_path):
    state = tmp_path / "state"
    first = load_secret(None, state)
    assert len(first) == 64
    assert os.stat(state / "sticky-secret").st_mode & 0o777 == 0o600
    assert load_secret(None, state) == first


def test_secret_file_wins(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"shared-by-the-fleet\n")
    assert load_secret(str(path), tmp_path / "unused") == b"shared-by-the-fleet"
    assert not (tmp_path / "unused").exists()


def test_learned_sessions_expire_after_the_ttl_since_last_use():
    table = LearnedSessions(ttl=10.0, capacity=100)
    table.remember(b"abc", A, 0.0)
    assert table.target_for(b"abc", 9.0) is A  # use extends it
    assert table.target_for(b"abc", 18.0) is A
    assert table.target_for(b"abc", 28.5) is None
    assert len(table) == 0


def test_learned_sessions_are_bounded_and_drop_the_least_recently_used():
    table = LearnedSessions(ttl=100.0, capacity=2)
    table.remember(b"one", A, 0.0)
    table.remember(b"two", B, 0.0)
    table.target_for(b"one", 1.0)
    table.remember(b"three", B, 2.0)
    assert len(table) == 2
    assert table.target_for(b"two", 3.0) is None
    assert table.target_for(b"one", 3.0) is A
