"""TargetState: the feedback the proxy gives, and the load reports it parses."""

from __future__ import annotations

import math

import pytest
from balancing_support import Clock
from hypothesis import given
from hypothesis import strategies as st

from bascule.balancing import TargetState, parse_load_body, parse_load_header
from bascule.balancing.state import DEFAULT_RTT, FAILURE_RTT, RAMP_FLOOR, RTT_DECAY, ramp


def test_in_flight_returns_to_zero_after_every_request_finishes():
    state = TargetState(clock=Clock())
    for _ in range(5):
        state.start()
    assert state.in_flight == 5
    for _ in range(5):
        state.finish(0.01)
    assert state.in_flight == 0
    state.finish(0.01)  # an extra finish (a bug elsewhere) cannot make it negative
    assert state.in_flight == 0


def test_an_unmeasured_target_starts_at_the_default_response_time():
    clock = Clock()
    assert TargetState(clock=clock).rtt(clock.now) == DEFAULT_RTT


def test_a_slow_response_counts_at_once_in_full():
    clock = Clock()
    state = TargetState(clock=clock)
    state.start()
    state.finish(0.5)
    assert state.rtt(clock.now) == 0.5


def test_fast_responses_pull_the_estimate_down_with_time_not_with_count():
    clock = Clock()
    state = TargetState(clock=clock)
    state.finish(1.0)
    for _ in range(100):  # a burst at the same instant barely moves it
        state.finish(0.01)
    assert state.rtt(clock.now) == 1.0
    clock.advance(RTT_DECAY)  # a sample's weight is what the old estimate lost since
    state.finish(0.01)
    decay = math.exp(-1)
    assert state.rtt(clock.now) == pytest.approx(1.0 * decay + 0.01 * (1 - decay))


def test_an_idle_estimate_decays_toward_zero():
    clock = Clock()
    state = TargetState(clock=clock)
    state.finish(1.0)
    clock.advance(3 * RTT_DECAY)
    assert state.rtt(clock.now) == pytest.approx(math.exp(-3))


def test_a_failure_counts_as_a_slow_response():
    clock = Clock()
    state = TargetState(clock=clock)
    state.start()
    state.finish(0.001, ok=False)  # refused at once
    assert state.rtt(clock.now) == FAILURE_RTT


def test_a_load_report_is_fresh_for_max_age_then_unknown():
    clock = Clock()
    state = TargetState(clock=clock)
    assert state.fresh_load(clock.now, 10.0) is None
    state.report_load(42)
    clock.advance(10.0)
    assert state.fresh_load(clock.now, 10.0) == 42
    clock.advance(0.001)
    assert state.fresh_load(clock.now, 10.0) is None


@pytest.mark.parametrize("load", [-1, 100.5, math.nan, math.inf])
def test_a_load_outside_0_to_100_is_refused(load):
    with pytest.raises(ValueError, match="0-100"):
        TargetState(clock=Clock()).report_load(load)


def test_coming_back_up_starts_slow_start_but_staying_up_does_not():
    clock = Clock()
    state = TargetState(clock=clock)
    assert state.up_since is None
    state.set_available(True)
    assert state.up_since is None
    state.set_available(False)
    clock.advance(5)
    state.set_available(True)
    assert state.up_since == clock.now


def test_the_watcher_hears_every_change_and_can_be_replaced():
    heard: list[str] = []
    state = TargetState(clock=Clock())
    state.watch(lambda: heard.append("a"))
    state.start()
    state.finish(0.1)
    state.report_load(3)
    state.set_available(False)
    state.watch(lambda: heard.append("b"))
    state.start()
    state.watch(None)
    state.start()
    assert heard == ["a", "a", "a", "a", "b"]


def test_ramp_is_linear_from_a_floor_to_one():
    assert ramp(None, 5.0, 30.0) == 1.0
    assert ramp(0.0, 5.0, 0.0) == 1.0
    assert ramp(0.0, 0.0, 30.0) == RAMP_FLOOR
    assert ramp(0.0, 7.5, 30.0) == 0.25
    assert ramp(0.0, 15.0, 30.0) == 0.5
    assert ramp(0.0, 30.0, 30.0) == 1.0
    assert ramp(0.0, 99.0, 30.0) == 1.0


@pytest.mark.parametrize(
    ("value", "load"),
    [(b"42", 42.0), (b"0", 0.0), (b"100", 100.0), (b" 37.5 ", 37.5), (b"007", 7.0)],
)
def test_a_load_header_is_a_plain_number_from_0_to_100(value, load):
    assert parse_load_header(value) == load


@pytest.mark.parametrize(
    "value",
    [b"", b" ", b"-1", b"101", b"100.5", b"1e2", b"nan", b"inf", b"42%", b"42, 43", b"4 2"],
)
def test_a_garbled_load_header_is_ignored(value):
    assert parse_load_header(value) is None


@pytest.mark.parametrize(
    ("body", "load"),
    [
        (b'{"load": 42}', 42.0),
        (b'{"status": "ok", "load": 12.5}\n', 12.5),
        (b"55", 55.0),
        (b'  {"load": 0}  ', 0.0),
    ],
)
def test_a_health_check_body_reports_json_or_a_bare_number(body, load):
    assert parse_load_body(body) == load


@pytest.mark.parametrize(
    "body",
    [
        b'{"load": "42"}',
        b'{"load": true}',
        b'{"load": -3}',
        b'{"load": 1000}',
        b'{"load": NaN}',
        b'{"load": Infinity}',
        b'{"busy": 42}',
        b"[42]",
        b"{not json",
        b'{"load": 42}' + b" " * 5000,
        b"[" * 100_000,
    ],
)
def test_a_garbled_health_check_body_is_ignored(body):
    assert parse_load_body(body) is None


@given(st.binary(max_size=64))
def test_parsing_any_bytes_gives_none_or_a_load(value):
    for load in (parse_load_header(value), parse_load_body(value)):
        assert load is None or 0.0 <= load <= 100.0
