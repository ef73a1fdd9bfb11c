"""Request ids and trace context through the proxy: made, kept from a trusted balancer,
replaced from anyone else, returned to the client, logged; traceparent with a new span."""

from __future__ import annotations

import json
import re
from typing import Any

from e2e.backends import echo
from e2e.proxy import config
from e2e.wire import Response, Wire

ID = re.compile(r"[0-9a-f]{32}")
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def send(port: int, *lines: str) -> tuple[Response, dict[str, str]]:
    """The response, and the headers the target received (lower-case names)."""
    head = "\r\n".join(["GET /x HTTP/1.1", "Host: a", *lines]) + "\r\n\r\n"
    with Wire(port) as wire:
        response = wire.request(head.encode())
    seen = {k.lower(): v for k, v in json.loads(response.body)["headers"]}
    return response, seen


def test_every_request_gets_an_id_sent_up_returned_and_logged(backend, bascule):
    proxy = bascule(config(backend(echo)))
    response, seen = send(proxy.port)
    request_id = response.header("x-request-id")
    assert request_id is not None
    assert ID.fullmatch(request_id)
    assert seen["x-request-id"] == request_id
    assert proxy.last_log()["request_id"] == request_id
    second, _ = send(proxy.port)
    assert second.header("x-request-id") != request_id


def test_a_clients_id_is_replaced_unless_a_trusted_balancer_sent_it(backend, bascule):
    target = backend(echo)
    untrusted = bascule(config(target))
    response, seen = send(untrusted.port, "X-Request-Id: Forged-ID")
    assert response.header("x-request-id") != "Forged-ID"
    assert seen["x-request-id"] == response.header("x-request-id")
    trusted = bascule({**config(target), "trusted_proxies": ["127.0.0.0/8"]})
    response, seen = send(trusted.port, "X-Request-Id: LB-7f3a/42")
    assert (response.header("x-request-id"), seen["x-request-id"]) == ("LB-7f3a/42", "LB-7f3a/42")
    response, _ = send(trusted.port, 'X-Request-Id: no "quotes" please')
    assert ID.fullmatch(response.header("x-request-id") or "")  # unusable: a fresh one


def test_traceparent_goes_on_with_a_new_span_and_tracestate_untouched(backend, bascule):
    proxy = bascule(config(backend(echo)))
    _, seen = send(proxy.port, f"traceparent: {TRACE}", "tracestate: vendor=abc")
    version, trace, span, flags = seen["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE.split("-")[1], "01")
    assert span != TRACE.split("-")[2]
    assert re.fullmatch(r"[0-9a-f]{16}", span)
    assert seen["tracestate"] == "vendor=abc"
    for invalid in ("01-" + TRACE[3:], "00-" + "0" * 32 + TRACE[35:], "garbage"):
        _, seen = send(proxy.port, f"traceparent: {invalid}")
        assert "traceparent" not in seen
    _, seen = send(proxy.port)
    assert "traceparent" not in seen  # none is made up


def test_local_answers_carry_the_id_too(backend, bascule):
    cfg: dict[str, Any] = config(backend(echo), route={"match": {"path": "/only"}})
    proxy = bascule(cfg)
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET /elsewhere HTTP/1.1\r\nHost: a\r\n\r\n")
    assert response.status == 404
    assert ID.fullmatch(response.header("x-request-id") or "")


def test_turned_off_bascule_stays_out_of_it(backend, bascule):
    proxy = bascule({**config(backend(echo)), "request_ids": False})
    response, seen = send(proxy.port)
    assert response.header("x-request-id") is None
    assert "x-request-id" not in seen
    assert proxy.last_log()["request_id"] is None
    _, seen = send(proxy.port, f"traceparent: {TRACE}", "X-Request-Id: Client-1")
    assert (seen["traceparent"], seen["x-request-id"]) == (TRACE, "Client-1")  # as sent
