"""The discovery keys of the config: `srv` targets, `resolvers`, `resolve_every`; and how
build_discovery turns them into what is looked up."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from bascule.config import ConfigError, Problem, Upstream, json_schema, load_text
from bascule.config.address import BindAddress
from bascule.runtime.build import build_discovery, build_upstreams
from bascule.upstream.discovery import Endpoint, HostName, ServiceName


def load(upstream: str) -> Upstream:
    text = dedent(
        """\
        listeners: [{name: public, bind: "127.0.0.1:8080"}]
        routes: [{name: app, upstream: app}]
        upstreams:
          app:
        """
    ) + indent(dedent(upstream).strip() + "\n", "    ")
    return load_text(text, "bascule.yaml").config.upstreams["app"]


def problems(upstream: str) -> list[Problem]:
    with pytest.raises(ConfigError) as raised:
        load(upstream)
    return raised.value.problems


def test_a_hostname_address_is_looked_up_and_an_ip_is_not() -> None:
    spec = load(
        """\
        targets:
          - address: App.Internal:8080
          - address: 10.0.0.1:8080
          - address: "[2001:db8::1]:8080"
          - srv: _HTTP._tcp.example.com
        """
    )

    assert [t.dns_name for t in spec.targets] == [
        "App.Internal",
        None,
        None,
        "_http._tcp.example.com",
    ]
    assert spec.resolve_every is None
    assert spec.resolvers == []


def test_resolvers_take_an_ip_with_or_without_a_port() -> None:
    spec = load(
        """\
        targets: [{address: app.internal:8080}]
        resolvers: [10.0.0.2, 127.0.0.1:5353, "[2001:db8::53]:5300", "2001:db8::54"]
        resolve_every: 250ms
        """
    )

    assert spec.resolvers == [
        BindAddress("10.0.0.2", 53),
        BindAddress("127.0.0.1", 5353),
        BindAddress("2001:db8::53", 5300),
        BindAddress("2001:db8::54", 53),
    ]
    assert spec.resolve_every == 0.25


@pytest.mark.parametrize(
    ("upstream", "path", "words"),
    [
        (
            "targets: [{address: '10.0.0.1:80', srv: _http._tcp.example.com}]",
            "upstreams.app.targets[0]",
            "exactly one of `address` (host:port) and `srv`",
        ),
        ("targets: [{weight: 2}]", "upstreams.app.targets[0]", "exactly one of `address`"),
        (
            "targets: [{srv: _http._tcp.example.com, weight: 2}]",
            "upstreams.app.targets[0]",
            "its SRV records give each host's weight",
        ),
        ("targets: [{srv: '10.0.0.1'}]", "upstreams.app.targets[0].srv", "is not a DNS name"),
        (
            "targets: [{address: 'a.example:80'}]\nresolvers: [dns.example]",
            "upstreams.app.resolvers[0]",
            "a resolver is an IP address",
        ),
        (
            "targets: [{address: 'a.example:80'}]\nresolvers: ['10.0.0.2:99999']",
            "upstreams.app.resolvers[0]",
            "the port must be a number from 1 to 65535",
        ),
        (
            "targets: [{address: 'a.example:80'}]\nresolve_every: 0s",
            "upstreams.app.resolve_every",
            "must be longer than 0s",
        ),
        (
            "targets: [{address: '10.0.0.1:80'}]\nresolve_every: 5s",
            "upstreams.app",
            "`resolve_every` applies to targets given by host name or srv",
        ),
        (
            "targets: [{address: '10.0.0.1:80'}]\nresolvers: [10.0.0.2]",
            "upstreams.app",
            "`resolvers` applies to targets given by host name or srv",
        ),
    ],
)
def test_a_wrong_discovery_key_says_what_to_write(upstream: str, path: str, words: str) -> None:
    (problem,) = problems(upstream)

    assert problem.path == path
    assert words in problem.message


def test_the_schema_describes_the_discovery_keys() -> None:
    definitions = json_schema()["$defs"]
    target = definitions["Target"]["properties"]
    upstream = definitions["Upstream"]["properties"]

    assert target["address"]["type"] == "string"
    assert "_http._tcp" in target["srv"]["anyOf"][0]["description"]
    for key in ("resolve_every", "resolvers"):
        assert upstream[key]["description"], key
    assert "address" not in definitions["Target"].get("required", [])


def test_build_discovery_follows_names_in_config_order_and_skips_ip_only_upstreams() -> None:
    text = dedent(
        """\
        listeners: [{name: public, bind: "127.0.0.1:8080"}]
        routes: [{name: app, upstream: app}, {name: ips, upstream: ips}]
        upstreams:
          app:
            targets:
              - {address: app.internal:8080, weight: 3}
              - {address: 10.0.0.1:8081}
              - {srv: _http._tcp.example.com}
            resolvers: [127.0.0.1:5353]
          ips:
            targets: [{address: 10.0.0.2:80}]
        """
    )
    config = load_text(text, "bascule.yaml").config
    upstreams = build_upstreams(config)

    discovery = build_discovery(config, upstreams)

    (member,) = discovery.members
    assert member.upstream is upstreams["app"]
    assert [entry.source for entry in member.entries] == [
        HostName("app.internal", 8080, 3, 0),
        None,
        ServiceName("_http._tcp.example.com", 2),
    ]
    assert member.entries[1].endpoints == (Endpoint("10.0.0.1", 8081, 1, 1),)
    # Only IP targets are there before the first lookup.
    assert [t.name for t in upstreams["app"].targets] == ["10.0.0.1:8081"]
    assert [t.name for t in upstreams["ips"].targets] == ["10.0.0.2:80"]
