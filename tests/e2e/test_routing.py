"""Routing end to end: which route takes a request, and the local actions."""

from __future__ import annotations

import pytest

from e2e.backends import fixed, refused_port
from e2e.proxy import config
from e2e.wire import Wire


@pytest.fixture
def routed(backend, bascule):
    """A proxy whose routes each answer with their own name (one backend per route)."""

    def start(*routes: dict):
        upstreams = {}
        full = []
        for route in routes:
            name = route["name"]
            if "respond" not in route and "redirect" not in route:
                upstreams[name] = {
                    "targets": [{"address": backend(fixed(body=name.encode())).address}]
                }
                route = {"upstream": name, **route}
            full.append(route)
        return bascule(config(routes=full, upstreams=upstreams))

    return start


def ask(proxy, method: bytes, path: bytes, host: bytes = b"a", extra: bytes = b""):
    with Wire(proxy.port) as wire:
        return wire.request(b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method, path, host, extra))


def test_host_exact_and_wildcard(routed):
    proxy = routed(
        {"name": "api", "match": {"host": "api.test"}},
        {"name": "wild", "match": {"host": "*.test"}},
        {"name": "rest"},
    )
    assert ask(proxy, b"GET", b"/", b"API.test:8080").body == b"api"
    assert ask(proxy, b"GET", b"/", b"www.test").body == b"wild"
    assert ask(proxy, b"GET", b"/", b"test").body == b"rest"


def test_path_prefix_exact_and_regex(routed):
    proxy = routed(
        {"name": "exact", "match": {"path_exact": "/login"}},
        {"name": "regex", "match": {"path_regex": "^/item/[0-9]+$"}},
        {"name": "prefix", "match": {"path": "/static/"}},
    )
    assert ask(proxy, b"GET", b"/login?next=/").body == b"exact"
    assert ask(proxy, b"GET", b"/item/42").body == b"regex"
    assert ask(proxy, b"GET", b"/static/app.js").body == b"prefix"
    assert ask(proxy, b"GET", b"/login/more").status == 404
    assert ask(proxy, b"GET", b"/item/x").status == 404


def test_methods_and_headers(routed):
    proxy = routed(
        {"name": "writes", "match": {"methods": ["POST", "PUT"]}},
        {"name": "canary", "match": {"headers": {"X-Canary": "1"}}},
        {"name": "rest"},
    )
    assert ask(proxy, b"PUT", b"/", extra=b"Content-Length: 0\r\n").body == b"writes"
    assert ask(proxy, b"GET", b"/", extra=b"x-canary: 1\r\n").body == b"canary"
    assert ask(proxy, b"GET", b"/", extra=b"X-Canary: 2\r\n").body == b"rest"


def test_first_matching_route_wins(routed):
    proxy = routed(
        {"name": "first", "match": {"path": "/a"}}, {"name": "second", "match": {"path": "/a/b"}}
    )
    assert ask(proxy, b"GET", b"/a/b").body == b"first"


def test_redirect_fills_request_uri(routed):
    proxy = routed(
        {"name": "moved", "redirect": {"to": "https://new.test{request_uri}", "status": 301}}
    )
    response = ask(proxy, b"GET", b"/old/page?q=1")
    assert response.status == 301
    assert response.header("location") == "https://new.test/old/page?q=1"


def test_respond_answers_with_status_body_and_headers(routed):
    proxy = routed(
        {
            "name": "health",
            "respond": {"status": 203, "body": "up\n", "headers": {"X-Health": "ok"}},
        }
    )
    response = ask(proxy, b"GET", b"/healthz")
    assert (response.status, response.body) == (203, b"up\n")
    assert response.header("x-health") == "ok"


def test_no_matching_route_is_404_and_logged(bascule):
    routes = [{"name": "only", "match": {"path_exact": "/x"}, "upstream": "u"}]
    proxy = bascule(
        config(
            routes=routes,
            upstreams={"u": {"targets": [{"address": f"127.0.0.1:{refused_port()}"}]}},
        )
    )
    response = ask(proxy, b"GET", b"/nowhere")
    assert response.status == 404
    assert b"no route" in response.body
    assert proxy.last_log()["status"] == 404
