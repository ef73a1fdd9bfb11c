"""The balancing keys of an upstream: each validated, each placed, each explained."""

from __future__ import annotations

from collections.abc import Callable
from textwrap import dedent, indent

import pytest

from bascule.config import Config, LoadedConfig, Problem, json_schema
from bascule.config.hash_key import HashKey, KeyVariable, parse_hash_key

Problems = Callable[[str], list[Problem]]
Loaded = Callable[[str], LoadedConfig]

HEAD = """\
listeners: [{name: web, bind: "0.0.0.0:8080"}]
routes: [{name: r, upstream: app}]
upstreams:
  app:
"""


def config(body: str) -> str:
    """The YAML of a one-upstream config; `body` is the upstream's keys (lines from 5)."""
    return HEAD + indent(dedent(body), "    ")


def where(problem: Problem) -> tuple[int | None, str]:
    return (problem.line, problem.path)


@pytest.mark.parametrize(
    "body",
    [
        "balance: round_robin\nslow_start: 30s\ntargets: [{address: 'h:1', weight: 3}]",
        "balance: random\ntargets: [{address: 'h:1'}]",
        "balance: least_conn\nslow_start: 1m\ntargets: [{address: 'h:1'}]",
        "balance: power_of_two\ntargets: [{address: 'h:1'}]",
        "balance: least_time\nslow_start: 10s\ntargets: [{address: 'h:1'}]",
        "balance: ip_hash\nbounded_load: 1.25\ntargets: [{address: 'h:1'}]",
        "balance: hash\nkey: $remote_addr\ntargets: [{address: 'h:1'}]",
        "balance: least_load\nload_header: X-Load\nload_max_age: 30s\n"
        "targets: [{address: 'h:1', priority: 1, max_load: 80.5}]",
        "balance: geo\ngeo: {client_regions: {eu: [10.0.0.0/8]}}\n"
        "targets: [{address: 'h:1', region: eu}]",
    ],
)
def test_every_balancer_loads_with_its_own_keys(loaded: Loaded, body: str) -> None:
    result = loaded(config(body))
    assert result.warnings == []
    upstream = result.config.upstreams["app"]
    assert Config.model_validate(result.config.model_dump(by_alias=True)) == result.config
    assert upstream.balance == body.split("\n")[0].removeprefix("balance: ")


def test_the_defaults(loaded: Loaded) -> None:
    upstream = loaded(config("targets: [{address: 'h:1'}]")).config.upstreams["app"]
    assert upstream.balance == "round_robin"
    assert (upstream.key, upstream.bounded_load, upstream.geo) == (None, None, None)
    assert upstream.load_header == "X-Server-Load"
    assert upstream.load_max_age == 10.0
    assert upstream.slow_start == 0.0
    assert (upstream.targets[0].priority, upstream.targets[0].max_load) == (0, None)


def test_hash_without_a_key_says_what_to_add(problems: Problems) -> None:
    (problem,) = problems(config("balance: hash\ntargets: [{address: 'h:1'}]"))
    assert where(problem) == (5, "upstreams.app.balance")
    assert problem.message == "balance: hash needs a `key`: the request value to hash"
    assert problem.suggestion is not None
    assert "key: $cookie_session" in problem.suggestion


@pytest.mark.parametrize(
    ("body", "line", "path", "message", "suggestion"),
    [
        (
            "balance: ip_hash\nkey: $uri\ntargets: [{address: 'h:1'}]",
            6,
            "upstreams.app.key",
            "`key` does not apply to balance: ip_hash; it is for balance: hash",
            "ip_hash always hashes the client address: remove `key`, or use balance: hash",
        ),
        (
            "bounded_load: 1.5\ntargets: [{address: 'h:1'}]",
            5,
            "upstreams.app.bounded_load",
            "`bounded_load` does not apply to balance: round_robin; it is for balance: hash "
            "and ip_hash",
            "remove it, or set balance: hash",
        ),
        (
            "balance: least_conn\nload_header: X-Load\ntargets: [{address: 'h:1'}]",
            6,
            "upstreams.app.load_header",
            "`load_header` does not apply to balance: least_conn; it is for balance: least_load",
            "remove it, or set balance: least_load",
        ),
        (
            "load_max_age: 5s\ntargets: [{address: 'h:1'}]",
            5,
            "upstreams.app.load_max_age",
            "`load_max_age` does not apply to balance: round_robin; it is for balance: least_load",
            "remove it, or set balance: least_load",
        ),
        (
            "balance: hash\nkey: $uri\nslow_start: 30s\ntargets: [{address: 'h:1'}]",
            7,
            "upstreams.app.slow_start",
            "`slow_start` does not apply to balance: hash; it is for balance: round_robin, "
            "random, least_conn, power_of_two, least_time and geo",
            "hashing keeps clients on their target; `bounded_load` protects one that returns",
        ),
        (
            "balance: least_load\nslow_start: 30s\ntargets: [{address: 'h:1'}]",
            6,
            "upstreams.app.slow_start",
            "`slow_start` does not apply to balance: least_load; it is for balance: "
            "round_robin, random, least_conn, power_of_two, least_time and geo",
            "remove it: load reports already steer traffic away from a busy target",
        ),
        (
            "geo: {client_regions: {eu: [10.0.0.0/8]}}\ntargets: [{address: 'h:1'}]",
            5,
            "upstreams.app.geo",
            "`geo` does not apply to balance: round_robin; it is for balance: geo",
            "remove it, or set balance: geo",
        ),
        (
            "targets:\n  - {address: 'h:1', priority: 1}",
            6,
            "upstreams.app.targets[0].priority",
            "a target's `priority` does not apply to balance: round_robin; it is for "
            "balance: least_load",
            "remove it, or set balance: least_load",
        ),
        (
            "balance: random\ntargets:\n  - address: 'h:1'\n    max_load: 50",
            8,
            "upstreams.app.targets[0].max_load",
            "a target's `max_load` does not apply to balance: random; it is for "
            "balance: least_load",
            "remove it, or set balance: least_load",
        ),
    ],
)
def test_a_key_the_algorithm_would_ignore_is_an_error_at_that_key(
    problems: Problems, body: str, line: int, path: str, message: str, suggestion: str
) -> None:
    (problem,) = problems(config(body))
    assert where(problem) == (line, path)
    assert problem.message == message
    assert problem.suggestion == suggestion


@pytest.mark.parametrize(
    ("key", "complaint"),
    [
        ("$host", "unknown variable $host in the key '$host'; use $remote_addr, $uri, "),
        ("user-$", "unknown variable a bare $ in the key 'user-$'"),
        ("${cookie_sid", "an unclosed ${ in the key '${cookie_sid'; write ${name}"),
        ("$header_", "unknown variable $header_ in the key"),
        ("${arg_}", "unknown variable $arg_ in the key"),
        ("", "the key is empty"),
    ],
)
def test_a_bad_key_template_is_explained(problems: Problems, key: str, complaint: str) -> None:
    (problem,) = problems(config(f"balance: hash\nkey: '{key}'\ntargets: [{{address: 'h:1'}}]"))
    assert where(problem) == (6, "upstreams.app.key")
    assert complaint in problem.message


def test_a_key_template_parses_into_literals_and_variables() -> None:
    assert parse_hash_key("$header_x_user:${cookie_sid}x-$arg_id/$uri@$remote_addr") == HashKey(
        (
            KeyVariable("header", b"x-user"),
            b":",
            KeyVariable("cookie", b"sid"),
            b"x-",
            KeyVariable("arg", b"id"),
            b"/",
            KeyVariable("uri"),
            b"@",
            KeyVariable("remote_addr"),
        )
    )
    assert parse_hash_key("$header_X_Tenant") == HashKey((KeyVariable("header", b"x-tenant"),))


def test_the_upstream_offers_its_parsed_key(loaded: Loaded) -> None:
    upstream = loaded(
        config("balance: hash\nkey: 'tenant-$header_x_tenant'\ntargets: [{address: 'h:1'}]")
    ).config.upstreams["app"]
    assert upstream.hash_key == HashKey((b"tenant-", KeyVariable("header", b"x-tenant")))


@pytest.mark.parametrize(
    ("body", "line", "path", "complaint"),
    [
        (
            "balance: hash\nkey: $uri\nbounded_load: 1.0\ntargets: [{address: 'h:1'}]",
            7,
            "upstreams.app.bounded_load",
            "greater than 1",
        ),
        (
            "balance: least_load\nload_header: 'X Load'\ntargets: [{address: 'h:1'}]",
            6,
            "upstreams.app.load_header",
            "not a valid header name",
        ),
        (
            "balance: least_load\nload_max_age: soon\ntargets: [{address: 'h:1'}]",
            6,
            "upstreams.app.load_max_age",
            "expected a duration like 250ms",
        ),
        ("slow_start: -5s\ntargets: [{address: 'h:1'}]", 5, "upstreams.app.slow_start", "negative"),
        (
            "balance: least_load\ntargets: [{address: 'h:1', priority: -1}]",
            6,
            "upstreams.app.targets[0].priority",
            "greater than or equal to 0",
        ),
        (
            "balance: least_load\ntargets: [{address: 'h:1', max_load: 120}]",
            6,
            "upstreams.app.targets[0].max_load",
            "less than or equal to 100",
        ),
    ],
)
def test_bad_values_are_placed_and_explained(
    problems: Problems, body: str, line: int, path: str, complaint: str
) -> None:
    (problem,) = problems(config(body))
    assert where(problem) == (line, path)
    assert complaint in problem.message


GEO_TARGETS = """\
targets:
  - {address: "10.0.0.1:80", region: eu-west}
  - {address: "10.0.0.2:80", region: us-east}
"""


def test_geo_without_a_geo_block_says_what_to_add(problems: Problems) -> None:
    (problem,) = problems(config("balance: geo\n" + GEO_TARGETS))
    assert where(problem) == (5, "upstreams.app.balance")
    assert problem.message == "balance: geo needs a `geo` block saying where clients are"


def test_geo_needs_a_source_of_client_regions(problems: Problems) -> None:
    (problem,) = problems(config("balance: geo\ngeo: {fallback: {}}\n" + GEO_TARGETS))
    assert where(problem) == (6, "upstreams.app.geo")
    assert "needs `client_regions`, `mmdb` or both" in problem.message


def test_geo_needs_targets_with_a_region(problems: Problems) -> None:
    (problem,) = problems(config("balance: geo\ngeo: {mmdb: x.mmdb}\ntargets: [{address: 'h:1'}]"))
    assert where(problem) == (7, "upstreams.app.targets")
    assert problem.message == "balance: geo needs targets with a `region`, and none has one"


@pytest.mark.parametrize(
    ("cidrs", "column", "complaint"),
    [
        ("[10.1.0.0/33]", 34, "'10.1.0.0/33' is not a network; write it as 10.1.0.0/16"),
        ("[eu.example.com]", 34, "is not a network"),
        (
            "[10.1.2.3/16]",
            34,
            "'10.1.2.3/16' has bits set past its prefix; did you mean 10.1.0.0/16?",
        ),
        ("['2001:db8::1/32']", 34, "did you mean 2001:db8::/32?"),
    ],
)
def test_bad_client_networks_are_explained(
    problems: Problems, cidrs: str, column: int, complaint: str
) -> None:
    (problem,) = problems(
        config(f"balance: geo\ngeo:\n  client_regions: {{eu-west: {cidrs}}}\n" + GEO_TARGETS)
    )
    assert (problem.line, problem.column, problem.path) == (
        7,
        column,
        "upstreams.app.geo.client_regions.eu-west[0]",
    )
    assert complaint in problem.message


def test_client_networks_accept_ipv4_ipv6_and_bare_addresses(loaded: Loaded) -> None:
    upstream = loaded(
        config(
            "balance: geo\ngeo:\n  client_regions:\n"
            "    eu-west: [10.1.0.0/16, '2001:db8:e0::/44', 192.0.2.7]\n" + GEO_TARGETS
        )
    ).config.upstreams["app"]
    assert upstream.geo is not None
    assert upstream.geo.client_regions == {
        "eu-west": ["10.1.0.0/16", "2001:db8:e0::/44", "192.0.2.7/32"]
    }


def test_a_network_in_two_regions_is_an_error(problems: Problems) -> None:
    (problem,) = problems(
        config(
            "balance: geo\ngeo:\n  client_regions:\n    eu-west: [10.1.0.0/16]\n"
            "    us-east: [10.2.0.0/16, 10.1.0.0/16]\n" + GEO_TARGETS
        )
    )
    assert where(problem) == (9, "upstreams.app.geo.client_regions.us-east[1]")
    assert problem.message == (
        "10.1.0.0/16 is already in region 'eu-west'; a network can be in one region only"
    )


def test_fallback_regions_must_exist(problems: Problems) -> None:
    unknown_client, unknown_target = problems(
        config(
            "balance: geo\ngeo:\n  client_regions: {ap-south: [10.3.0.0/16]}\n"
            "  fallback:\n    ap-sout: [us-east]\n    ap-south: [eu-wset, us-east]\n" + GEO_TARGETS
        )
    )
    assert where(unknown_client) == (9, "upstreams.app.geo.fallback.ap-sout")
    assert unknown_client.message == (
        "no client or target is in region 'ap-sout', so this fallback never applies"
    )
    assert unknown_client.suggestion == "did you mean 'ap-south'?"
    assert where(unknown_target) == (10, "upstreams.app.geo.fallback.ap-south[0]")
    assert unknown_target.message == "no target is in region 'eu-wset'"
    assert unknown_target.suggestion == "did you mean 'eu-west'?"


def test_with_a_database_whose_values_are_region_names_any_client_region_may_fall_back(
    loaded: Loaded,
) -> None:
    upstream = loaded(
        config(
            "balance: geo\ngeo:\n  mmdb: /var/lib/GeoLite2-Country.mmdb\n"
            "  fallback: {DE: [eu-west], US: [us-east, eu-west]}\n" + GEO_TARGETS
        )
    ).config.upstreams["app"]
    assert upstream.geo is not None
    assert upstream.geo.mmdb is not None
    assert upstream.geo.mmdb.path == "/var/lib/GeoLite2-Country.mmdb"
    assert upstream.geo.mmdb.field == "country.iso_code"


def test_a_database_with_a_region_map_names_its_regions(loaded: Loaded, problems: Problems) -> None:
    geo = (
        "balance: geo\ngeo:\n  mmdb:\n    path: geo.mmdb\n    field: continent.code\n"
        "    regions: {europe: [EU], americas: [NA, SA]}\n"
    )
    loaded(config(geo + "  fallback: {europe: [us-east]}\n" + GEO_TARGETS))
    (problem,) = problems(config(geo + "  fallback: {asia: [us-east]}\n" + GEO_TARGETS))
    assert where(problem) == (11, "upstreams.app.geo.fallback.asia")


@pytest.mark.parametrize("field", ["country..iso_code", "country.iso code", ".code"])
def test_a_bad_database_field_is_explained(problems: Problems, field: str) -> None:
    (problem,) = problems(
        config(f"balance: geo\ngeo:\n  mmdb: {{path: g.mmdb, field: '{field}'}}\n" + GEO_TARGETS)
    )
    assert problem.path == "upstreams.app.geo.mmdb.field"
    assert "write dotted keys such as country.iso_code" in problem.message


def test_the_schema_describes_every_balancing_key() -> None:
    definitions = json_schema()["$defs"]
    upstream = definitions["Upstream"]["properties"]
    assert set(upstream["balance"]["enum"]) == {
        "round_robin",
        "random",
        "least_conn",
        "power_of_two",
        "least_time",
        "ip_hash",
        "hash",
        "least_load",
        "geo",
    }
    for key in ("key", "bounded_load", "load_header", "load_max_age", "slow_start", "geo"):
        assert upstream[key]["description"], key
    target = definitions["Target"]["properties"]
    assert target["priority"]["minimum"] == 0
    assert target["max_load"]["anyOf"][0]["maximum"] == 100
    mmdb = definitions["Geo"]["properties"]["mmdb"]
    assert {"type": "string", "description": "Path to the .mmdb file."} in mmdb["anyOf"]
    assert "GeoDatabase" in definitions
