"""Expect: 100-continue end to end: the interim 100 reaches the client before the body."""

from __future__ import annotations

import json

from e2e.backends import continue_aware
from e2e.proxy import config
from e2e.wire import Wire


def test_100_continue_reaches_client_then_final_response(backend, bascule):
    proxy = bascule(config(backend(continue_aware, raw=True)))
    with Wire(proxy.port) as wire:
        wire.send(
            b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"
        )
        interim = wire.read_response()  # sent before any body byte: the proxy must relay it
        assert interim.status == 100
        wire.send(b"hello world")
        final = wire.read_response()
    assert final.status == 200
    seen = json.loads(final.body)
    assert seen["body_length"] == 11
    assert ("Expect", "100-continue") in [tuple(h) for h in seen["headers"]]


def test_100_continue_is_not_relayed_to_http10_client(backend, bascule):
    proxy = bascule(config(backend(continue_aware, raw=True)))
    with Wire(proxy.port) as wire:
        final = wire.request(
            b"PUT /up HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
        )
    assert final.status == 200
    assert json.loads(final.body)["body_length"] == 2
