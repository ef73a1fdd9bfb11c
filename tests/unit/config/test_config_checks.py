"""Cross-section rules: unique names, resolvable references, and the warnings."""

from collections.abc import Callable

import pytest

from bascule.config import LoadedConfig, Problem

Problems = Callable[[str], list[Problem]]
Loaded = Callable[[str], LoadedConfig]


def where(problem: Problem) -> tuple[int | None, int | None, str]:
    return (problem.line, problem.column, problem.path)


def test_a_route_naming_an_unknown_upstream_suggests_the_closest(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: public, bind: "0.0.0.0:8080"}]
        routes:
          - name: api
            upstream: apii
        upstreams:
          api: {targets: [{address: "h:1"}]}
        """
    )

    assert where(problem) == (4, 15, "routes[0].upstream")
    assert problem.message == "route 'api' names upstream 'apii', which is not defined"
    assert problem.suggestion == "did you mean 'api'?"


def test_a_route_naming_an_unknown_listener_suggests_the_closest(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: public, bind: "0.0.0.0:8080"}]
        routes:
          - name: site
            listeners: [pubic]
            respond: {}
        """
    )

    assert where(problem) == (4, 17, "routes[0].listeners[0]")
    assert problem.message == "no listener is named 'pubic'"
    assert problem.suggestion == "did you mean 'public'?"


def test_routes_cannot_name_a_tcp_listener(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - {name: redis, bind: "0.0.0.0:6379", protocol: tcp, upstream: redis}
        routes:
          - {name: r, listeners: [redis], respond: {}}
        upstreams:
          redis: {targets: [{address: "h:6379"}]}
        """
    )

    assert where(problem) == (4, 27, "routes[0].listeners[0]")
    assert "'redis' is a tcp listener" in problem.message


def test_duplicate_names_and_binds_point_at_the_second_one(problems: Problems) -> None:
    found = problems(
        """\
        listeners:
          - name: web
            bind: 0.0.0.0:8080
          - name: web
            bind: 0.0.0.0:8080
        routes:
          - {name: r, respond: {}}
          - {name: r, respond: {}}
        """
    )

    assert [where(p) for p in found] == [
        (4, 11, "listeners[1].name"),
        (5, 11, "listeners[1].bind"),
        (8, 12, "routes[1].name"),
    ]
    assert found[0].message == "listener name 'web' is already used by listeners[0] (line 2)"
    assert found[2].message == "route name 'r' is already used by routes[0] (line 7)"


def test_a_tcp_listener_needs_an_existing_upstream(problems: Problems) -> None:
    missing, unknown = problems(
        """\
        listeners:
          - {name: a, bind: "0.0.0.0:1", protocol: tcp}
          - {name: b, bind: "0.0.0.0:2", protocol: tcp, upstream: redsi}
        upstreams:
          redis: {targets: [{address: "h:6379"}]}
        """
    )

    assert where(missing) == (2, 5, "listeners[0]")
    assert missing.message == "tcp listener 'a' needs an upstream to send connections to"
    assert where(unknown) == (3, 59, "listeners[1].upstream")
    assert unknown.suggestion == "did you mean 'redis'?"


def test_http_listeners_do_not_take_an_upstream(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - {name: a, bind: "0.0.0.0:1", upstream: web}
        upstreams:
          web: {targets: [{address: "h:1"}]}
        """
    )

    assert where(problem) == (2, 44, "listeners[0].upstream")
    assert "through routes" in problem.message


def test_https_needs_tls_and_tls_needs_https(problems: Problems) -> None:
    no_tls, stray_tls = problems(
        """\
        listeners:
          - {name: a, bind: "0.0.0.0:443", protocol: https}
          - name: b
            bind: 0.0.0.0:80
            tls:
              certificates: [{cert: a.pem, key: a.key}]
        """
    )

    assert where(no_tls) == (2, 5, "listeners[0]")
    assert no_tls.message == "https listener 'a' needs `tls` with at least one certificate"
    assert where(stray_tls) == (6, 7, "listeners[1].tls")
    assert stray_tls.suggestion == "set `protocol: https` or remove `tls`"


def test_tls_needs_at_least_one_certificate(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners:
          - {name: a, bind: "0.0.0.0:443", protocol: https, tls: {certificates: []}}
        """
    )

    assert where(problem) == (2, 73, "listeners[0].tls.certificates")
    assert problem.message == "needs at least 1 item"


def test_references_are_checked_even_when_other_entries_are_invalid(problems: Problems) -> None:
    found = problems(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes:
          - {name: broken, respond: {status: 7}}
          - {name: api, upstream: apii}
        upstreams:
          api: {targets: []}
        """
    )

    assert [(p.line, p.path) for p in found] == [
        (3, "routes[0].respond.status"),
        (4, "routes[1].upstream"),
        (6, "upstreams.api.targets"),
    ]


def test_unknown_listener_is_not_guessed_while_a_listener_is_invalid(problems: Problems) -> None:
    (problem,) = problems(
        """\
        listeners: [{name: web, bind: "nowhere"}]
        routes: [{name: r, listeners: [web], respond: {}}]
        """
    )

    assert problem.path == "listeners[0].bind"


def test_an_unused_upstream_is_a_warning(loaded: Loaded) -> None:
    (warning,) = loaded(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes: [{name: r, upstream: used}]
        upstreams:
          used: {targets: [{address: "h:1"}]}
          spare: {targets: [{address: "h:2"}]}
        """
    ).warnings

    assert where(warning) == (5, 3, "upstreams.spare")
    assert warning.message == "upstream 'spare' is not used by any route or listener"


def test_an_upstream_used_by_a_tcp_listener_is_used(loaded: Loaded) -> None:
    result = loaded(
        """\
        listeners: [{name: redis, bind: "0.0.0.0:6379", protocol: tcp, upstream: redis}]
        upstreams:
          redis: {targets: [{address: "h:6379"}]}
        """
    )

    assert result.warnings == []


def test_a_shadowed_route_is_a_warning_naming_both_routes_and_lines(loaded: Loaded) -> None:
    (warning,) = loaded(
        """\
        listeners: [{name: web, bind: "0.0.0.0:8080"}]
        routes:
          - name: api
            match: {path: /api/}
            respond: {}
          - name: api-v2
            match: {path: /api/v2/}
            respond: {}
        """
    ).warnings

    assert where(warning) == (6, 5, "routes[1]")
    assert warning.message == (
        "route 'api-v2' (line 6) never matches: route 'api' (line 3) comes first "
        "and takes every request it would"
    )
    assert warning.suggestion == "move 'api-v2' above 'api', or narrow 'api'"
    assert str(warning).startswith("bascule.yaml:6:5: routes[1]: route 'api-v2' (line 6)")


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{}", "{path: /x}"),
        ("{path: /}", "{path_regex: x}"),
        ("{path: /a}", "{path_exact: /a/b}"),
        ("{host: '*.example.com'}", "{host: [a.example.com, '*.b.example.com'], path: /}"),
        ("{host: [a.com, b.com]}", "{host: b.com}"),
        ("{methods: [GET, POST]}", "{methods: [get]}"),
        ("{headers: {X-A: '1'}}", "{headers: {x-a: '1', X-B: '2'}}"),
        ("{path_exact: /a}", "{path_exact: /a, methods: [GET]}"),
    ],
)
def test_routes_that_an_earlier_one_covers_are_shadowed(
    loaded: Loaded, earlier: str, later: str
) -> None:
    warnings = loaded(
        f"""\
        listeners: [{{name: web, bind: "0.0.0.0:8080"}}]
        routes:
          - {{name: first, match: {earlier}, respond: {{}}}}
          - {{name: second, match: {later}, respond: {{}}}}
        """
    ).warnings

    assert [w.path for w in warnings] == ["routes[1]"]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{path: /api/}", "{path: /}"),
        ("{path: /a}", "{path_regex: ^/a}"),
        ("{path_exact: /a}", "{path: /a}"),
        ("{host: a.com}", "{}"),
        ("{host: '*.example.com'}", "{host: example.com}"),
        ("{methods: [GET]}", "{}"),
        ("{methods: [GET]}", "{methods: [GET, POST]}"),
        ("{headers: {X-A: '1'}}", "{headers: {X-A: '2'}}"),
        ("{path_regex: ^/a}", "{path: /a}"),
    ],
)
def test_routes_that_can_still_match_are_not_shadowed(
    loaded: Loaded, earlier: str, later: str
) -> None:
    warnings = loaded(
        f"""\
        listeners: [{{name: web, bind: "0.0.0.0:8080"}}]
        routes:
          - {{name: first, match: {earlier}, respond: {{}}}}
          - {{name: second, match: {later}, respond: {{}}}}
        """
    ).warnings

    assert warnings == []


def test_a_route_on_other_listeners_is_not_shadowed(loaded: Loaded) -> None:
    warnings = loaded(
        """\
        listeners:
          - {name: a, bind: "0.0.0.0:1"}
          - {name: b, bind: "0.0.0.0:2"}
        routes:
          - {name: first, listeners: [a], respond: {}}
          - {name: second, respond: {}}
        """
    ).warnings

    assert warnings == []
