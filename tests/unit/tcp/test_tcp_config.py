"""The config of tcp listeners and of the upstreams they pipe to: keys, defaults, and the
cross-section rules with the messages an operator reads."""

from __future__ import annotations

from textwrap import dedent

import pytest

from bascule.config import ConfigError, Problem, load_text


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as raised:
        load_text(dedent(text), "bascule.yaml")
    return raised.value.problems


def tcp(listener: str = "", upstream: str = "", top: str = "") -> str:
    return (
        dedent(top)
        + dedent(
            """
        listeners:
          - name: redis
            bind: 127.0.0.1:6380
            protocol: tcp
            upstream: redis
        """
        )
        + "".join(f"    {line}\n" for line in dedent(listener).splitlines())
        + dedent(
            """
        upstreams:
          redis:
            targets: [{address: 127.0.0.1:6379}]
        """
        )
        + "".join(f"    {line}\n" for line in dedent(upstream).splitlines())
    )


def test_the_tcp_keys_load_with_their_units() -> None:
    config = load_text(
        tcp(
            """
            max_connections: 100
            proxy_protocol: accept
            timeouts: {idle: 5m, preread: 3s}
            sni_routes: {"A.Example.com.": redis, "*.example.org": redis}
            """,
            "proxy_protocol: v2",
            "trusted_proxies: [10.0.0.0/8]",
        )
    ).config
    listener = config.listeners[0]
    assert listener.max_connections == 100
    assert listener.proxy_protocol == "accept"
    assert (listener.timeouts.idle, listener.timeouts.preread) == (300.0, 3.0)
    assert listener.sni_routes == {"a.example.com": "redis", "*.example.org": "redis"}
    assert config.upstreams["redis"].proxy_protocol == "v2"


def test_defaults() -> None:
    listener = load_text(tcp()).config.listeners[0]
    assert listener.max_connections is None
    assert listener.proxy_protocol is None
    assert listener.sni_routes == {}
    assert (listener.timeouts.idle, listener.timeouts.preread) == (600.0, 10.0)


def test_sni_routes_refuse_ip_addresses_and_bad_names() -> None:
    found = problems(tcp('sni_routes: {"10.0.0.1": redis, "a.*.com": redis}'))
    assert [p.path for p in found] == [
        'listeners[0].sni_routes["10.0.0.1"]',
        'listeners[0].sni_routes["a.*.com"]',
    ]
    assert "TLS clients send host names only" in found[0].message


def test_sni_routes_name_upstreams_that_exist() -> None:
    (problem,) = problems(tcp("sni_routes: {a.example.com: rediss}"))
    assert problem.path == 'listeners[0].sni_routes["a.example.com"]'
    assert problem.message == "no upstream is named 'rediss'"
    assert problem.suggestion is not None
    assert "redis" in problem.suggestion


def test_sni_routes_alone_are_enough() -> None:
    text = tcp("sni_routes: {a.example.com: redis}").replace("    upstream: redis\n", "")
    assert load_text(text).warnings == []


def test_accepting_the_proxy_protocol_needs_trusted_proxies() -> None:
    (problem,) = problems(tcp("proxy_protocol: accept"))
    assert problem.path == "listeners[0].proxy_protocol"
    assert "every connection would be refused" in problem.message


@pytest.mark.parametrize(
    "key", ["max_connections: 5", "proxy_protocol: accept", "sni_routes: {a.b: app}"]
)
def test_tcp_keys_on_an_http_listener_are_errors(key: str) -> None:
    text = f"""
        trusted_proxies: [10.0.0.0/8]
        listeners:
          - {{name: web, bind: "127.0.0.1:80", {key}}}
        routes: [{{name: all, upstream: app}}]
        upstreams: {{app: {{targets: [{{address: "127.0.0.1:81"}}]}}}}
        """
    (problem,) = problems(text)
    assert problem.message.endswith("applies to tcp listeners; this one is http")


def test_tcp_timeouts_on_an_http_listener_and_http_keys_on_tcp_are_errors() -> None:
    text = """
        listeners:
          - {name: web, bind: "127.0.0.1:80", timeouts: {idle: 1s}}
          - {name: db, bind: "127.0.0.1:81", protocol: tcp, upstream: app,
             timeouts: {header: 1s}, limits: {max_body_bytes: 1KiB}}
        routes: [{name: all, upstream: app}]
        upstreams: {app: {targets: [{address: "127.0.0.1:82"}]}}
        """
    found = {p.path: p.message for p in problems(text)}
    assert found == {
        "listeners[0].timeouts.idle": "`timeouts.idle` applies to tcp listeners; this one is http",
        "listeners[1].timeouts.header": "`timeouts.header` applies to HTTP requests; tcp "
        "listeners pipe bytes",
        "listeners[1].limits": "`limits` applies to HTTP requests; tcp listeners pipe bytes",
    }


def test_hashing_http_values_is_an_error_for_a_tcp_upstream() -> None:
    (problem,) = problems(tcp(upstream="balance: hash\nkey: $header_x_user"))
    assert problem.path == "upstreams.redis.key"
    assert "has no URI, headers, cookies or query arguments" in problem.message
    assert problem.suggestion == (
        "hash on the client address: `key: $remote_addr`, or `balance: ip_hash`"
    )


def test_hashing_the_client_address_is_fine() -> None:
    load_text(tcp(upstream="balance: hash\nkey: tenant-$remote_addr"))


def test_sticky_sessions_are_an_error_for_a_tcp_upstream() -> None:
    (problem,) = problems(tcp(upstream="sticky: {source_ip: true}"))
    assert problem.path == "upstreams.redis.sticky"
    assert "sticky sessions need HTTP" in problem.message


def test_sending_the_proxy_protocol_from_routes_only_is_an_error() -> None:
    text = """
        listeners: [{name: web, bind: "127.0.0.1:80"}]
        routes: [{name: all, upstream: app}]
        upstreams: {app: {proxy_protocol: v1, targets: [{address: "127.0.0.1:81"}]}}
        """
    (problem,) = problems(text)
    assert problem.path == "upstreams.app.proxy_protocol"
    assert "sent on tcp listeners' connections only" in problem.message


def test_an_upstream_only_sni_routes_use_is_used() -> None:
    text = tcp("sni_routes: {a.example.com: other}")
    text += "  other:\n    targets: [{address: 127.0.0.1:6390}]\n"
    assert load_text(text).warnings == []
