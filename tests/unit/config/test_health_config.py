"""`health:` and `outlier_detection:` on an upstream: defaults, spellings, and the errors an
operator sees for each mistake, at the right line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent, indent

import pytest
import yaml

from bascule.config import LoadedConfig, Problem, load_text
from bascule.config.health import Health, OutlierDetection, parse_statuses

Problems = Callable[[str], list[Problem]]
Loaded = Callable[[str], LoadedConfig]

HEAD = """\
listeners: [{name: web, bind: "0.0.0.0:8080"}]
routes: [{name: r, upstream: app}]
upstreams:
  app:
    targets: [{address: "127.0.0.1:8081"}, {address: "127.0.0.1:8082"}]
"""


def config(body: str) -> str:
    """A one-upstream config; `body` holds more keys of the upstream (lines from 6)."""
    return HEAD + indent(dedent(body), "    ")


def messages(problems: list[Problem]) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.path, p.message) for p in problems]


def test_an_upstream_has_neither_unless_configured(loaded: Loaded) -> None:
    upstream = loaded(config("")).config.upstreams["app"]
    assert upstream.health is None
    assert upstream.outlier_detection is None


def test_health_defaults(loaded: Loaded) -> None:
    health = loaded(config("health: {http: {}}")).config.upstreams["app"].health
    assert health is not None
    assert health.http is not None
    assert (health.interval, health.timeout, health.jitter) == (5.0, 2.0, 10.0)
    assert (health.healthy, health.unhealthy, health.initial) == (2, 3, "unknown")
    http = health.http
    assert (http.method, http.path, http.host) == ("GET", "/healthz", None)
    assert http.statuses == ((200, 399),)
    assert (http.expect_body, http.headers) == (None, {})


def test_outlier_detection_defaults(loaded: Loaded) -> None:
    outlier = loaded(config("outlier_detection: {}")).config.upstreams["app"].outlier_detection
    assert outlier == OutlierDetection(
        consecutive_failures=5, base_ejection=30.0, max_ejection=300.0, max_ejected_percent=50
    )


def test_every_key_in_its_usual_spelling(loaded: Loaded) -> None:
    upstream = loaded(
        config(
            """\
                health:
                  http:
                    method: head
                    path: /ready?deep=1
                    host: app.internal:8080
                    expect_status: "200,204"
                    expect_body: '"status":\\s*"ok"'
                    headers: {Authorization: "Bearer x"}
                  interval: 250ms
                  timeout: 100ms
                  jitter: 0%
                  healthy: 1
                  unhealthy: 1
                  initial: down
                outlier_detection:
                  consecutive_failures: 3
                  base_ejection: 10s
                  max_ejection: 1m
                  max_ejected_percent: 100
                """
        )
    ).config.upstreams["app"]
    health = upstream.health
    assert health is not None
    assert health.http is not None
    assert health.http.method == "HEAD"
    assert health.http.statuses == ((200, 200), (204, 204))
    assert (health.interval, health.timeout, health.jitter, health.initial) == (
        0.25,
        0.1,
        0.0,
        "down",
    )
    assert upstream.outlier_detection == OutlierDetection(
        consecutive_failures=3, base_ejection=10.0, max_ejection=60.0, max_ejected_percent=100
    )


def test_a_tcp_check_has_no_keys_of_its_own(loaded: Loaded, problems: Problems) -> None:
    health = loaded(config("health: {tcp: {}, interval: 1s}")).config.upstreams["app"].health
    assert health is not None
    assert health.tcp is not None
    assert health.http is None
    (problem,) = problems(config("health: {tcp: {path: /}}"))
    assert problem.path == "upstreams.app.health.tcp.path"


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("200-399", ((200, 399),)),
        ("200", ((200, 200),)),
        ("200,204", ((200, 200), (204, 204))),
        ("2xx", ((200, 299),)),
        ("2XX, 404", ((200, 299), (404, 404))),
        ("100-599", ((100, 599),)),
    ],
)
def test_expect_status_spellings(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_statuses(text) == ranges


def test_expect_status_may_be_a_bare_number(loaded: Loaded) -> None:
    health = loaded(config("health: {http: {expect_status: 204}}")).config.upstreams["app"].health
    assert health is not None
    assert health.http is not None
    assert health.http.statuses == ((204, 204),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("200-", "'200-' is not a status or range"),
        ("6xx", "'6xx' is not a status or range"),
        ("ok", "'ok' is not a status or range"),
        ("200,,204", "'' is not a status or range"),
        ("099", "99 is not an HTTP status (100-599)"),
        ("200-600", "600 is not an HTTP status (100-599)"),
        ("399-200", "'399-200': a range goes from low to high, like 200-399"),
    ],
)
def test_a_bad_expect_status_says_what_is_wrong(
    problems: Problems, text: str, message: str
) -> None:
    (problem,) = problems(config(f'health: {{http: {{expect_status: "{text}"}}}}'))
    assert problem.path == "upstreams.app.health.http.expect_status"
    assert problem.line == 6
    assert message in problem.message


def test_exactly_one_kind_of_check(problems: Problems) -> None:
    both = problems(config("health: {http: {}, tcp: {}}"))
    neither = problems(config("health: {interval: 1s}"))
    assert messages(both) == [
        (
            6,
            "upstreams.app.health",
            "health needs exactly one of http and tcp; it has both (for example "
            "`http: {path: /healthz}` or `tcp: {}`)",
        )
    ]
    assert "it has neither" in neither[0].message


def test_a_body_pattern_must_compile(problems: Problems) -> None:
    (problem,) = problems(config("health: {http: {expect_body: 'ok('}}"))
    assert problem.path == "upstreams.app.health.http.expect_body"
    assert problem.message.startswith("not a valid regular expression: missing )")


@pytest.mark.parametrize(
    ("yaml", "path", "message"),
    [
        ("{path: healthz}", "http.path", "a path starts with '/'"),
        ("{path: '/a b'}", "http.path", "a path starts with '/'"),
        ("{path: /café}", "http.path", "printable ASCII without spaces"),
        ("{method: 'GE T'}", "http.method", "not a valid HTTP method"),
        ("{host: 'a b'}", "http.host", "is not a host name with an optional :port"),
        ("{host: 'a:b'}", "http.host", "is not a host name with an optional :port"),
        ("{headers: {'X-A': \"a\\nb\"}}", "http.headers.X-A", "line break"),
        ("{headers: {Host: a}}", "http", "Host is set by the check itself; use `host`"),
        ("{headers: {connection: a}}", "http", "connection is set by the check itself"),
        ("{pth: /}", "http.pth", "unknown key; did you mean 'path'?"),
    ],
)
def test_http_check_mistakes(problems: Problems, yaml: str, path: str, message: str) -> None:
    (problem,) = problems(config(f"health: {{http: {yaml}}}"))
    assert problem.path == f"upstreams.app.health.{path}"
    assert message in f"{problem.message}; {problem.suggestion}"


def test_hosts_with_ports_and_ipv6_are_accepted(loaded: Loaded) -> None:
    for host in ("example.com", "example.com:8080", "10.0.0.1", "[::1]", "[::1]:8080"):
        health = loaded(config(f"health: {{http: {{host: '{host}'}}}}")).config
        assert health.upstreams["app"].health is not None


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("interval: 0s", "greater than 0"),
        ("timeout: 0", "greater than 0"),
        ("healthy: 0", "greater than or equal to 1"),
        ("unhealthy: 101", "less than or equal to 100"),
        ("jitter: 60%", "jitter is a share of the interval from 0% to 50%, got '60%'"),
        ("jitter: ten", "expected a percentage like 10%, got 'ten'"),
        ("jitter: true", "expected a percentage like 10%, got True"),
        ("initial: maybe", "'unknown', 'up' or 'down'"),
    ],
)
def test_check_timing_mistakes(problems: Problems, key: str, message: str) -> None:
    (problem,) = problems(config(f"health:\n  http: {{}}\n  {key}\n"))
    assert problem.line == 8
    assert message in problem.message


def test_jitter_is_a_percentage_with_or_without_the_sign(loaded: Loaded) -> None:
    for spelling, percent in (("25%", 25.0), ("2.5%", 2.5), ("10", 10.0)):
        health = loaded(config(f"health: {{tcp: {{}}, jitter: {spelling}}}")).config
        assert health.upstreams["app"].health == Health(tcp={}, jitter=percent)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("yaml", "path", "message"),
    [
        ("{consecutive_failures: 0}", "consecutive_failures", "greater than or equal to 1"),
        ("{base_ejection: 0s}", "base_ejection", "greater than 0"),
        ("{max_ejected_percent: 101}", "max_ejected_percent", "less than or equal to 100"),
        ("{max_ejected_percent: -1}", "max_ejected_percent", "greater than or equal to 0"),
        (
            "{base_ejection: 1m, max_ejection: 30s}",
            "",
            "max_ejection is shorter than base_ejection; make it at least as long",
        ),
    ],
)
def test_outlier_detection_mistakes(problems: Problems, yaml: str, path: str, message: str) -> None:
    (problem,) = problems(config(f"outlier_detection: {yaml}"))
    assert problem.path == "upstreams.app.outlier_detection" + (f".{path}" if path else "")
    assert problem.line == 6
    assert message in problem.message


def test_a_loaded_config_dumps_and_loads_back_the_same(loaded: Loaded) -> None:
    text = config(
        """\
        health: {http: {expect_status: 2xx, expect_body: ok}, jitter: 5%, interval: 1s}
        outlier_detection: {consecutive_failures: 2}
        """
    )
    upstream = loaded(text).config.upstreams["app"]
    dumped = upstream.model_dump(include={"health", "outlier_detection"})
    again = type(upstream).model_validate({**dumped, "targets": [{"address": "h:1"}]})
    assert (again.health, again.outlier_detection) == (
        upstream.health,
        upstream.outlier_detection,
    )


RESILIENCE = Path(__file__).parents[3] / "docs" / "resilience.md"


def _section(title: str) -> str:
    text = RESILIENCE.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("title", ["Active health checks", "Passive outlier detection"])
def test_the_examples_in_docs_resilience_load(title: str) -> None:
    """Each `upstreams:` example in the section loads, without warnings, behind a listener
    and a route to each of its upstreams."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", _section(title), flags=re.DOTALL | re.MULTILINE)
    assert blocks, f"no yaml example in {title}"
    for block in blocks:
        assert block.startswith("upstreams:\n"), block
        names = yaml.safe_load(block)["upstreams"]
        routes = "".join(
            f"  - {{name: {n}, match: {{path: /{n}/}}, upstream: {n}}}\n" for n in names
        )
        text = f"listeners: [{{name: web, bind: '0.0.0.0:8080'}}]\nroutes:\n{routes}{block}"
        assert load_text(text, "resilience.md").warnings == []
