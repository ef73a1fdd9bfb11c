"""The HTTP check's request bytes and its verdict on a response, without sockets."""

from __future__ import annotations

import re

import pytest

from bascule.http.head import ResponseHead
from bascule.upstream.probe import HttpProbe, Outcome
from bascule.upstream.target import Target


def head(status: int, *headers: str) -> ResponseHead:
    lines = "".join(f"{h}\r\n" for h in headers)
    return ResponseHead(f"HTTP/1.1 {status} X\r\n{lines}\r\n".encode(), "1.1", status)


def test_the_request_names_the_target_and_closes() -> None:
    probe = HttpProbe(path="/healthz?deep=1", headers={"X-Check": "1"})
    assert probe.request(Target("10.0.0.1", 8080)) == (
        b"GET /healthz?deep=1 HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nX-Check: 1\r\n"
        b"User-Agent: bascule-health-check\r\nConnection: close\r\n\r\n"
    )


def test_a_configured_host_and_user_agent_replace_the_defaults() -> None:
    probe = HttpProbe(method="HEAD", host="app.internal", headers={"user-agent": "probe/1"})
    assert probe.request(Target("::1", 80)) == (
        b"HEAD /healthz HTTP/1.1\r\nHost: app.internal\r\nuser-agent: probe/1\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert (
        HttpProbe()
        .request(Target("::1", 80))
        .startswith(b"GET /healthz HTTP/1.1\r\nHost: [::1]:80\r\n")
    )


@pytest.mark.parametrize(
    ("status", "passed"), [(200, True), (204, True), (399, True), (199, False), (503, False)]
)
def test_statuses_in_the_ranges_pass(status: int, passed: bool) -> None:
    probe = HttpProbe(statuses=((200, 299), (300, 399)))
    assert probe.judge(head(status), b"") == Outcome(passed, f"GET /healthz → {status}")


def test_the_body_must_contain_the_pattern() -> None:
    probe = HttpProbe(body=re.compile(r'"status":\s*"ok"'))
    assert probe.judge(head(200), b'{"status": "ok"}').passed
    assert probe.judge(head(200), b'{"status": "down"}') == Outcome(
        False, 'GET /healthz → 200, body does not match /"status":\\s*"ok"/'
    )


def test_a_failing_status_is_reported_before_the_body() -> None:
    probe = HttpProbe(body=re.compile("ok"))
    assert probe.judge(head(500), b"nope").reason == "GET /healthz → 500"


def test_load_comes_from_the_header_or_else_the_body_with_least_load_only() -> None:
    least_load = HttpProbe(load_header=b"x-server-load")
    assert least_load.judge(head(200, "X-Server-Load: 42"), b'{"load": 7}').load == 42.0
    assert least_load.judge(head(200), b'{"load": 7, "ok": true}').load == 7.0
    assert least_load.judge(head(200), b"ok").load is None
    assert least_load.judge(head(503), b"99").load == 99.0  # a failing target may still say
    assert HttpProbe().judge(head(200, "X-Server-Load: 42"), b"").load is None
