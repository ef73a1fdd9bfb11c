"""Every error names the file, line, column and key path, and suggests a fix where it can."""

from collections.abc import Callable

import pytest

from bascule.config import ConfigError, Problem, load_text

Problems = Callable[[str], list[Problem]]


def where(problem: Problem) -> tuple[int | None, int | None, str]:
    return (problem.line, problem.column, problem.path)


def test_unknown_key_points_at_the_key_and_suggests_the_field(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - name: web
            bind: 0.0.0.0:8080
        routes:
          - name: site
            respond: {}
          - name: api
            match:
              hots: api.example.com
            respond: {}
        """
    )

    assert where(problem) == (9, 7, "routes[1].match.hots")
    assert problem.message == "unknown key"
    assert problem.suggestion == "did you mean 'host'?"
    assert str(problem) == (
        "bascule.yaml:9:7: routes[1].match.hots: unknown key; did you mean 'host'?"
    )


def test_unknown_key_that_belongs_one_level_down_says_where(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - name: web
            bind: 0.0.0.0:8080
            header: 5s
        """
    )

    assert where(problem) == (4, 5, "listeners[0].header")
    assert problem.suggestion is not None
    assert problem.suggestion.startswith("did you mean 'timeouts.header'?")


def test_unknown_key_with_no_close_match_lists_the_valid_keys(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        colour: blue
        """
    )

    assert where(problem) == (2, 1, "colour")
    assert problem.suggestion == (
        "valid keys: workers, admin, access_log, request_ids, tracing, drain_timeout, "
        "trusted_proxies, state_dir, listeners, routes, upstreams"
    )


def test_the_yaml_alias_of_a_field_is_what_suggestions_use(problems: Problems) -> None:
    missing, unknown = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes:
          - name: r
            respond: {}
            rewrite:
              replace: {pattern: "a", wiht: "b"}
        """
    )

    assert where(missing) == (6, 16, "routes[0].rewrite.replace.with")
    assert missing.message == "required key is missing"
    assert where(unknown) == (6, 31, "routes[0].rewrite.replace.wiht")
    assert unknown.suggestion == "did you mean 'with'?"


def test_bad_value_points_at_the_value(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - name: web
            bind: 0.0.0.0:8080
        upstreams:
          web:
            targets:
              - address: 10.0.0.1:80
                weight: 5000
        """
    )

    assert where(problem) == (8, 17, "upstreams.web.targets[0].weight")
    assert "less than or equal to 1000" in problem.message


def test_bad_duration_and_size_explain_the_syntax(problems: Problems) -> None:
    duration, size = problems(
        """\
        listeners:
          - name: web
            bind: 0.0.0.0:8080
            timeouts: {header: ten}
            limits: {max_body_bytes: 10 MB please}
        """
    )

    assert where(duration) == (4, 24, "listeners[0].timeouts.header")
    assert "expected a duration like 250ms, 10s" in duration.message
    assert where(size) == (5, 30, "listeners[0].limits.max_body_bytes")
    assert "expected a size like 512B, 16KiB" in size.message


def test_a_missing_required_key_points_at_its_mapping(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - name: web
            protocol: http
        """
    )

    assert where(problem) == (2, 5, "listeners[0].bind")
    assert problem.message == "required key is missing"


def test_unquoted_number_where_text_belongs_suggests_quotes(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes:
          - name: canary
            match: {headers: {X-Canary: 1}}
            respond: {}
        """
    )

    assert where(problem) == (4, 33, "routes[0].match.headers.X-Canary")
    assert problem.suggestion == 'put it in quotes to keep it as text: "1"'


def test_a_bad_mapping_key_points_at_the_key(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes:
          - name: r
            respond: {}
            headers:
              response: {set: {"X Frame": DENY}}
        """
    )

    assert where(problem) == (6, 24, 'routes[0].headers.response.set["X Frame"]')
    assert "not a valid header name" in problem.message


def test_a_literal_typo_gets_a_suggestion(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - {name: web, bind: "0.0.0.0:8080", protocol: htps}
        """
    )

    assert where(problem) == (2, 49, "listeners[0].protocol")
    assert problem.message == "expected 'http', 'https' or 'tcp', got 'htps'"
    assert problem.suggestion == "did you mean 'https'?"


@pytest.mark.parametrize(
    ("action", "complaint"),
    [
        ("", "it has none"),
        ("upstream: web\n    respond: {}", "it has upstream and respond"),
    ],
)
def test_a_route_needs_exactly_one_action(problems: Problems, action: str, complaint: str) -> None:
    (problem,) = problems(
        f"""\
listeners: [{{name: web, bind: "0.0.0.0:8080"}}]
routes:
  - name: r
    {action}
upstreams:
  web: {{targets: [{{address: "h:1"}}]}}
"""
    )

    assert where(problem) == (3, 5, "routes[0]")
    assert "route 'r' needs exactly one action of upstream, redirect and respond" in problem.message
    assert complaint in problem.message


@pytest.mark.parametrize(
    ("match", "column", "path", "complaint"),
    [
        ("{path: api/}", 19, "routes[0].match.path", "must start with '/'"),
        ("{path_regex: '(unclosed'}", 25, "routes[0].match.path_regex", "missing ), unterminated"),
        ("{methods: [GET, 'BAD METHOD']}", 28, "routes[0].match.methods[1]", "not a valid HTTP"),
        ("{host: 'api.*.com'}", 19, "routes[0].match.host[0]", "whole first label"),
        ("{host: [a.com, 'b.com:8080']}", 27, "routes[0].match.host[1]", "without a port"),
        ("{path: /a, path_exact: /a}", 12, "routes[0].match", "only one of path, path_exact"),
    ],
)
def test_bad_match_rules_are_explained(
    problems: Problems, match: str, column: int, path: str, complaint: str
) -> None:
    (problem,) = problems(
        f"""\
listeners: [{{name: web, bind: "0.0.0.0:8080"}}]
routes:
  - name: r
    match: {match}
    respond: {{}}
"""
    )

    assert where(problem) == (4, column, path)
    assert complaint in problem.message


@pytest.mark.parametrize(
    ("block", "path", "complaint"),
    [
        ('redirect: {to: "https://{hots}{path}"}', "routes[0].redirect.to", "unknown placeholder"),
        ('redirect: {to: "https://x/{"}', "routes[0].redirect.to", "literal brace"),
        ("redirect: {to: /x, status: 200}", "routes[0].redirect.status", "301, 302, 303"),
        ("respond: {status: 101}", "routes[0].respond.status", "greater than or equal to 200"),
        ('respond: {headers: {X-A: "a\\r\\nb"}}', "routes[0].respond.headers.X-A", "line break"),
        ("rewrite: {}\n    respond: {}", "routes[0].rewrite", "at least one of strip_prefix"),
        ("rewrite: {add_prefix: v2}\n    respond: {}", "routes[0].rewrite.add_prefix", "start"),
        (
            'rewrite: {replace: {pattern: "a", with: "\\\\1"}}\n    respond: {}',
            "routes[0].rewrite.replace",
            "invalid group reference 1",
        ),
    ],
)
def test_bad_actions_are_explained(
    problems: Problems, block: str, path: str, complaint: str
) -> None:
    (problem,) = problems(
        f"""\
listeners: [{{name: web, bind: "0.0.0.0:8080"}}]
routes:
  - name: r
    {block}
"""
    )

    assert (problem.line, problem.path) == (4, path)
    assert complaint in problem.message


def test_the_placeholder_message_lists_the_ones_allowed(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes:
          - {name: r, redirect: {to: "https://{hots}/"}}
        """
    )

    assert problem.message == (
        "unknown placeholder {hots}; use {scheme}, {host}, {path}, {query}, {request_uri}"
    )


def test_workers_must_be_positive_or_auto(problems: Problems) -> None:
    (problem,) = problems(
        """\
        workers: many
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        """
    )

    assert where(problem) == (1, 10, "workers")
    assert problem.message == "expected a whole number of at least 1, or auto; got 'many'"


def test_an_unknown_balancer_is_rejected_with_a_suggestion(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes: [{name: r, upstream: web}]
        upstreams:
          web:
            balance: least_connections
            targets: [{address: "h:1"}]
        """
    )

    assert where(problem) == (5, 14, "upstreams.web.balance")
    assert problem.message == (
        "expected 'round_robin', 'random', 'least_conn', 'power_of_two', 'least_time', "
        "'ip_hash', 'hash', 'least_load' or 'geo', got 'least_connections'"
    )
    assert problem.suggestion == "did you mean 'least_conn'?"


def test_every_error_in_the_file_is_reported_in_file_order(problems: Problems) -> None:
    found = problems(
        """\
        workers: 0
        listeners:
          - name: web
            bind: 0.0.0.0:99999
        routes:
          - name: api
            match: {hots: x.com}
            upstream: api
          - name: site
            upstream: wbe
        upstreams:
          api:
            targets: []
        """
    )

    assert [(p.line, p.path) for p in found] == [
        (1, "workers"),
        (4, "listeners[0].bind"),
        (7, "routes[0].match.hots"),
        (10, "routes[1].upstream"),
        (13, "upstreams.api.targets"),
    ]


def test_duplicate_yaml_keys_are_errors_not_silently_merged(problems: Problems) -> None:
    found = problems(
        """\
        listeners:
          - name: web
            bind: 0.0.0.0:8080
            name: other
        upstreams:
          api: {targets: [{address: "h:1"}]}
          api: {targets: [{address: "h:2"}]}
        """
    )

    assert [where(p) for p in found] == [
        (4, 5, "listeners[0].name"),
        (7, 3, "upstreams.api"),
    ]
    assert found[0].message.startswith("duplicate key (first set on line 2)")
    assert found[1].message.startswith("duplicate key (first set on line 6)")


def test_an_empty_file_is_an_error(problems: Problems) -> None:
    (problem,) = problems("# only a comment\n")

    assert problem.line is None
    assert "the file is empty" in problem.message


def test_a_file_that_is_not_a_mapping_is_an_error(problems: Problems) -> None:
    (problem,) = problems("- listeners\n")

    assert where(problem) == (1, 1, "")
    assert problem.message == "expected a mapping of keys to values, got a list"


def test_yaml_syntax_errors_have_a_line(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - name: web
           bind: 0.0.0.0:8080
        """
    )

    assert (problem.line, problem.column) == (3, 4)
    assert problem.message.startswith("YAML syntax error:")


def test_the_report_shows_each_problem_with_its_source_line() -> None:
    text = "listeners:\n  - {name: web, bind: '0.0.0.0:8080', protocl: http}\n"
    with pytest.raises(ConfigError) as raised:
        load_text(text, "bascule.yaml")

    assert str(raised.value) == (
        "bascule.yaml: 1 error\n"
        "bascule.yaml:2:39: listeners[0].protocl: unknown key; did you mean 'protocol'?\n"
        "    2 |   - {name: web, bind: '0.0.0.0:8080', protocl: http}\n"
        "      | " + " " * 38 + "^"
    )
