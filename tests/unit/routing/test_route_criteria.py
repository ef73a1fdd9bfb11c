"""Route construction: config values become bytes criteria, and mistakes name the route."""

from typing import Any

import pytest

from bascule.routing import ProxyTo, Route

WEB = ProxyTo("web")


def route_with(key: str, value: Any) -> Route:
    """A route given one criterion by name, as the config layer passes it."""
    return Route("r", WEB, **{key: value})


def test_route_stores_hosts_lower_case_and_deduplicated() -> None:
    route = Route("r", WEB, hosts=["API.Example.com", "api.example.com", "*.Example.com"])
    assert route.hosts == (b"api.example.com", b"*.example.com")


def test_route_without_hosts_matches_any_host() -> None:
    assert Route("r", WEB).hosts is None


def test_route_encodes_an_international_host_name_with_idna() -> None:
    assert Route("r", WEB, hosts=["bücher.example"]).hosts == (b"xn--bcher-kva.example",)
    assert Route("r", WEB, hosts=["*.bücher.example"]).hosts == (b"*.xn--bcher-kva.example",)


def test_route_brackets_a_bare_ipv6_host() -> None:
    assert Route("r", WEB, hosts=["::1", "[::2]"]).hosts == (b"[::1]", b"[::2]")


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "not a host name"),
        ("*", "not a host name"),
        ("a.*.com", "not a host name"),
        ("*example.com", "not a host name"),
        ("a..com", "not a host name"),
        (".a.com", "not a host name"),
        ("a.com:8080", "has a port"),
        ("a.com.", "did you mean 'a.com'"),
        ("[::1]:8080", "did you mean"),
    ],
)
def test_route_rejects_a_host_pattern_that_cannot_work(host: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Route("api", WEB, hosts=[host])


def test_route_errors_name_the_route() -> None:
    with pytest.raises(ValueError, match=r"^route 'api': "):
        Route("api", WEB, hosts=[])


@pytest.mark.parametrize("key", ["hosts", "methods", "listeners"])
def test_route_rejects_an_empty_list_that_would_match_nothing(key: str) -> None:
    with pytest.raises(ValueError, match="is empty"):
        route_with(key, [])


@pytest.mark.parametrize("key", ["hosts", "methods", "listeners"])
def test_route_rejects_a_string_where_a_list_is_expected(key: str) -> None:
    with pytest.raises(ValueError, match="list"):
        route_with(key, "GET")


def test_route_accepts_at_most_one_path_criterion() -> None:
    with pytest.raises(ValueError, match="at most one"):
        Route("r", WEB, path="/a", path_regex="^/b")


@pytest.mark.parametrize("key", ["path", "path_exact"])
def test_route_path_must_start_with_a_slash(key: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        route_with(key, "v1/")


def test_route_path_must_be_ascii_because_requests_arrive_percent_encoded() -> None:
    with pytest.raises(ValueError, match="percent-encoded"):
        Route("r", WEB, path="/café")


def test_route_rejects_a_path_regex_that_does_not_compile() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        Route("r", WEB, path_regex="/(unclosed")


def test_route_path_criteria_are_bytes() -> None:
    assert Route("r", WEB, path="/v1/").path_prefix == b"/v1/"
    assert Route("r", WEB, path_exact="/health").path_exact == b"/health"
    regex = Route("r", WEB, path_regex=r"^/u/\d+$").path_regex
    assert regex is not None
    assert regex.pattern == rb"^/u/\d+$"


def test_route_methods_are_upper_cased_bytes() -> None:
    assert Route("r", WEB, methods=["get", "Post"]).methods == frozenset({b"GET", b"POST"})


def test_route_header_names_are_lower_cased_and_values_kept_exact() -> None:
    route = Route("r", WEB, headers={"X-Canary": "On"})
    assert route.headers == ((b"x-canary", b"On"),)


@pytest.mark.parametrize("name", ["", "X Canary", "X-Canary:", "Ünicode"])
def test_route_rejects_a_header_criterion_that_is_not_a_header_name(name: str) -> None:
    with pytest.raises(ValueError, match="not a header name"):
        Route("r", WEB, headers={name: "1"})


def test_route_listeners_become_a_frozenset() -> None:
    assert Route("r", WEB, listeners=["public", "secure"]).listeners == frozenset(
        {"public", "secure"}
    )
    assert Route("r", WEB).listeners is None


def test_route_filters_start_empty_for_the_engine_to_fill() -> None:
    route = Route("r", WEB)
    assert route.filters == ()
    route.filters = (object(),)
    assert len(route.filters) == 1


def test_route_preserve_host_defaults_to_true() -> None:
    assert Route("r", WEB).preserve_host is True
    assert Route("r", WEB, preserve_host=False).preserve_host is False


def test_route_has_slots_and_no_instance_dict() -> None:
    route = Route("r", WEB)
    assert not hasattr(route, "__dict__")
    with pytest.raises(AttributeError):
        route.extra = 1  # type: ignore[attr-defined]
