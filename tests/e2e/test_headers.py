"""Header handling (RFC 9110 §7.6): hop-by-hop, X-Forwarded-*, Via, Host, route edits."""

from __future__ import annotations

import json

from e2e.backends import echo, fixed
from e2e.proxy import config
from e2e.wire import Wire


def forwarded(proxy, head: bytes) -> dict:
    """What the echo backend saw for the request `head` (no body)."""
    with Wire(proxy.port) as wire:
        response = wire.request(head)
    assert response.status == 200, response.body
    seen = json.loads(response.body)
    seen["names"] = {k.lower() for k, _ in seen["headers"]}
    seen["h"] = {k.lower(): v for k, v in seen["headers"]}
    seen["all"] = lambda name: [v for k, v in seen["headers"] if k.lower() == name]
    return seen


def test_hop_by_hop_request_headers_are_not_forwarded(backend, bascule):
    proxy = bascule(config(backend(echo)))
    seen = forwarded(
        proxy,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
        b"Trailer: X-T\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    for name in (
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ):
        assert name not in seen["names"], name
    assert seen["h"]["x-kept"] == "yes"


def test_hop_by_hop_response_headers_are_not_forwarded(backend, bascule):
    headers = (
        ("Connection", "X-Hop"),
        ("X-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "x"),
        ("Upgrade", "h2c"),
        ("Trailer", "X-T"),
        ("X-End", "e"),
    )
    proxy = bascule(config(backend(fixed(headers=headers))))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    names = response.names()
    for name in ("x-hop", "keep-alive", "proxy-connection", "upgrade", "trailer"):
        assert name not in names, name
    assert response.header("connection") is None
    assert response.header("x-end") == "e"


def test_x_forwarded_for_appends_the_client_to_an_existing_one(backend, bascule):
    proxy = bascule(config(backend(echo)))
    seen = forwarded(proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n")
    assert seen["all"]("x-forwarded-for") == ["10.1.1.1, 127.0.0.1"]


def test_x_forwarded_proto_host_and_real_ip_are_set_and_unforgeable(backend, bascule):
    proxy = bascule(config(backend(echo)))
    seen = forwarded(
        proxy,
        b"GET / HTTP/1.1\r\nHost: shop.test:8080\r\nX-Real-IP: 6.6.6.6\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n",
    )
    assert seen["all"]("x-real-ip") == ["127.0.0.1"]
    assert seen["all"]("x-forwarded-proto") == ["http"]
    assert seen["all"]("x-forwarded-host") == ["shop.test:8080"]
    assert "X-Forwarded-For" in dict(seen["headers"])


def test_behind_a_trusted_proxy_the_forwarded_client_is_the_client(backend, bascule):
    proxy = bascule({**config(backend(echo)), "trusted_proxies": ["127.0.0.0/8"]})
    seen = forwarded(
        proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.7\r\n\r\n"
    )
    assert seen["all"]("x-real-ip") == ["198.51.100.7"]
    assert seen["all"]("x-forwarded-for") == ["6.6.6.6, 198.51.100.7, 127.0.0.1"]
    assert proxy.last_log()["client"] == "198.51.100.7"


def test_an_untrusted_peer_cannot_choose_its_client_address(backend, bascule):
    proxy = bascule({**config(backend(echo)), "trusted_proxies": ["10.0.0.0/8"]})
    seen = forwarded(proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n")
    assert seen["all"]("x-real-ip") == ["127.0.0.1"]
    assert proxy.last_log()["client"] == "127.0.0.1"


def test_via_is_added_to_request_and_response(backend, bascule):
    proxy = bascule(config(backend(echo)))
    seen = forwarded(proxy, b"GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 edge\r\n\r\n")
    assert seen["all"]("via") == ["1.0 edge, 1.1 bascule"]
    with Wire(proxy.port) as wire:
        assert wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").header("via") == "1.1 bascule"


def test_host_is_passed_as_received_by_default(backend, bascule):
    proxy = bascule(config(backend(echo)))
    seen = forwarded(proxy, b"GET / HTTP/1.1\r\nHost: Shop.Test:81\r\n\r\n")
    assert seen["all"]("host") == ["Shop.Test:81"]


def test_host_is_the_target_address_without_preserve_host(backend, bascule):
    server = backend(echo)
    proxy = bascule(config(server, route={"preserve_host": False}))
    seen = forwarded(proxy, b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert seen["all"]("host") == [server.address]
    assert seen["all"]("x-forwarded-host") == ["shop.test"]


def test_route_header_rules_set_add_and_remove_on_the_request(backend, bascule):
    rules = {"request": {"set": {"X-Env": "prod"}, "add": {"X-Tag": "b"}, "remove": ["X-Debug"]}}
    proxy = bascule(config(backend(echo), route={"headers": rules}))
    seen = forwarded(
        proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Env: dev\r\nX-Tag: a\r\nX-Debug: 1\r\n\r\n"
    )
    assert seen["all"]("x-env") == ["prod"]
    assert seen["all"]("x-tag") == ["a", "b"]
    assert "x-debug" not in seen["names"]


def test_route_header_rules_set_add_and_remove_on_the_response(backend, bascule):
    rules = {
        "response": {
            "set": {"X-Frame-Options": "DENY"},
            "add": {"X-Tag": "b"},
            "remove": ["Server"],
        }
    }
    headers = (("Server", "leaky/1.0"), ("X-Frame-Options", "ALLOW"), ("X-Tag", "a"))
    proxy = bascule(config(backend(fixed(headers=headers)), route={"headers": rules}))
    with Wire(proxy.port) as wire:
        response = wire.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [v for k, v in response.headers if k.lower() == "x-frame-options"] == ["DENY"]
    assert [v for k, v in response.headers if k.lower() == "x-tag"] == ["a", "b"]
    assert "server" not in response.names()


def test_rewrite_strip_prefix_keeps_the_query(backend, bascule):
    proxy = bascule(config(backend(echo), route={"rewrite": {"strip_prefix": "/v1"}}))
    seen = forwarded(proxy, b"GET /v1/users?id=7 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert seen["path"] == "/users?id=7"


def test_rewrite_replace_uses_regex_groups(backend, bascule):
    rewrite = {"replace": {"pattern": "^/old/(\\w+)", "with": "/new/\\1/x"}}
    proxy = bascule(config(backend(echo), route={"rewrite": rewrite}))
    seen = forwarded(proxy, b"GET /old/abc HTTP/1.1\r\nHost: a\r\n\r\n")
    assert seen["path"] == "/new/abc/x"
