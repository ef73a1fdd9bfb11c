"""Router.match: host index, path, method and header criteria, first match wins."""

from collections.abc import Callable

import pytest

from bascule.routing import ProxyTo, Route, Router
from bascule.routing import router as router_module

WEB = ProxyTo("web")


def no_headers(name: bytes) -> bytes | None:
    return None


def headers_from(values: dict[bytes, bytes]) -> Callable[[bytes], bytes | None]:
    return values.get


def match_name(
    router: Router, host: bytes = b"", path: bytes = b"/", method: bytes = b"GET"
) -> str | None:
    route = router.match(method, host, path, no_headers)
    return None if route is None else route.name


# --- hosts -----------------------------------------------------------------------------


def test_exact_host_matches_only_that_host() -> None:
    router = Router([Route("api", WEB, hosts=["api.example.com"])])
    assert match_name(router, b"api.example.com") == "api"
    assert match_name(router, b"www.example.com") is None
    assert match_name(router, b"x.api.example.com") is None


def test_wildcard_host_matches_subdomains_at_any_depth() -> None:
    router = Router([Route("sub", WEB, hosts=["*.example.com"])])
    assert match_name(router, b"a.example.com") == "sub"
    assert match_name(router, b"a.b.c.example.com") == "sub"


def test_wildcard_host_does_not_match_the_apex_or_a_lookalike() -> None:
    router = Router([Route("sub", WEB, hosts=["*.example.com"])])
    assert match_name(router, b"example.com") is None
    assert match_name(router, b"badexample.com") is None
    assert match_name(router, b".example.com") is None


def test_route_without_hosts_matches_any_host_including_a_missing_one() -> None:
    router = Router([Route("any", WEB)])
    assert match_name(router, b"whatever.test") == "any"
    assert match_name(router, b"") == "any"


def test_missing_host_matches_only_routes_without_hosts() -> None:
    router = Router([Route("named", WEB, hosts=["a.com"]), Route("any", WEB)])
    assert match_name(router, b"") == "any"


def test_host_port_is_ignored() -> None:
    router = Router([Route("api", WEB, hosts=["api.example.com"])])
    assert match_name(router, b"api.example.com:8080") == "api"


def test_ipv6_host_literal_matches_with_and_without_port() -> None:
    router = Router([Route("local", WEB, hosts=["[::1]"])])
    assert match_name(router, b"[::1]") == "local"
    assert match_name(router, b"[::1]:8080") == "local"
    assert match_name(router, b"[::2]:8080") is None


def test_host_matching_is_case_insensitive() -> None:
    router = Router(
        [Route("api", WEB, hosts=["Api.Example.com"]), Route("sub", WEB, hosts=["*.Example.org"])]
    )
    assert match_name(router, b"API.EXAMPLE.COM") == "api"
    assert match_name(router, b"WWW.example.ORG:443") == "sub"


def test_fully_qualified_host_with_trailing_dot_matches() -> None:
    router = Router([Route("api", WEB, hosts=["api.example.com"])])
    assert match_name(router, b"api.example.com.") == "api"


def test_route_with_several_hosts_matches_each() -> None:
    router = Router([Route("multi", WEB, hosts=["a.com", "*.b.com"])])
    assert match_name(router, b"a.com") == "multi"
    assert match_name(router, b"x.b.com") == "multi"
    assert match_name(router, b"b.com") is None


# --- first match wins ------------------------------------------------------------------


def test_first_match_wins_across_host_index_and_hostless_routes_in_file_order() -> None:
    router = Router(
        [
            Route("api", WEB, path="/api"),
            Route("a-site", WEB, hosts=["a.com"], path="/"),
            Route("fallback", WEB, path="/"),
        ]
    )
    assert match_name(router, b"a.com", b"/api") == "api"
    assert match_name(router, b"a.com", b"/home") == "a-site"
    assert match_name(router, b"b.com", b"/home") == "fallback"


def test_earlier_wildcard_beats_later_exact_host() -> None:
    router = Router(
        [
            Route("wild", WEB, hosts=["*.example.com"], path="/static/"),
            Route("exact", WEB, hosts=["www.example.com"]),
            Route("wider", WEB, hosts=["*.com"]),
        ]
    )
    assert match_name(router, b"www.example.com", b"/static/x.css") == "wild"
    assert match_name(router, b"www.example.com", b"/") == "exact"
    assert match_name(router, b"cdn.example.com", b"/") == "wider"


def test_nested_wildcards_keep_file_order() -> None:
    router = Router(
        [
            Route("outer", WEB, hosts=["*.com"], path="/o"),
            Route("inner", WEB, hosts=["*.b.com"]),
            Route("outer-all", WEB, hosts=["*.com"]),
        ]
    )
    assert match_name(router, b"a.b.com", b"/o") == "outer"
    assert match_name(router, b"a.b.com", b"/x") == "inner"
    assert match_name(router, b"a.c.com", b"/x") == "outer-all"


# --- paths -----------------------------------------------------------------------------


def test_path_prefix_is_plain_bytes_startswith_as_nginx() -> None:
    router = Router([Route("v1", WEB, path="/v1")])
    assert match_name(router, path=b"/v1") == "v1"
    assert match_name(router, path=b"/v1/users") == "v1"
    assert match_name(router, path=b"/v1x") == "v1"  # documented: write /v1/ for the directory
    assert match_name(router, path=b"/v2") is None


def test_path_prefix_with_trailing_slash_does_not_match_the_bare_name() -> None:
    router = Router([Route("v1", WEB, path="/v1/")])
    assert match_name(router, path=b"/v1/") == "v1"
    assert match_name(router, path=b"/v1") is None


def test_path_exact_matches_only_the_whole_path() -> None:
    router = Router([Route("health", WEB, path_exact="/health")])
    assert match_name(router, path=b"/health") == "health"
    assert match_name(router, path=b"/health/") is None
    assert match_name(router, path=b"/healthz") is None


def test_path_regex_searches_unless_anchored() -> None:
    router = Router([Route("anywhere", WEB, path_regex=r"\.php")])
    assert match_name(router, path=b"/a/index.php") == "anywhere"
    anchored = Router([Route("user", WEB, path_regex=r"^/users/\d+$")])
    assert match_name(anchored, path=b"/users/42") == "user"
    assert match_name(anchored, path=b"/users/42/posts") is None
    assert match_name(anchored, path=b"/x/users/42") is None


def test_path_is_compared_raw_without_decoding() -> None:
    router = Router([Route("enc", WEB, path="/caf%C3%A9/")])
    assert match_name(router, path=b"/caf%C3%A9/menu") == "enc"
    assert match_name(router, path=b"/caf\xc3\xa9/menu") is None


# --- methods and headers ---------------------------------------------------------------


def test_methods_restrict_the_route() -> None:
    router = Router([Route("write", WEB, methods=["post", "PUT"]), Route("read", WEB)])
    assert match_name(router, method=b"POST") == "write"
    assert match_name(router, method=b"PUT") == "write"
    assert match_name(router, method=b"GET") == "read"


def test_request_methods_are_case_sensitive_as_on_the_wire() -> None:
    router = Router([Route("write", WEB, methods=["POST"])])
    assert match_name(router, method=b"post") is None


def test_header_criteria_match_case_insensitive_name_and_exact_value() -> None:
    router = Router([Route("canary", WEB, headers={"X-Canary": "1"}), Route("stable", WEB)])
    assert router.match(b"GET", b"", b"/", headers_from({b"x-canary": b"1"})) is router.routes[0]
    assert router.match(b"GET", b"", b"/", headers_from({b"x-canary": b"2"})) is router.routes[1]
    assert router.match(b"GET", b"", b"/", headers_from({})) is router.routes[1]


def test_all_header_criteria_must_hold() -> None:
    router = Router([Route("both", WEB, headers={"X-A": "1", "X-B": "2"})])
    assert router.match(b"GET", b"", b"/", headers_from({b"x-a": b"1"})) is None
    assert router.match(b"GET", b"", b"/", headers_from({b"x-a": b"1", b"x-b": b"2"})) is not None


def test_header_lookup_is_never_called_when_no_route_has_header_criteria() -> None:
    def forbidden(name: bytes) -> bytes | None:
        raise AssertionError(f"header({name!r}) called")

    router = Router(
        [Route("api", WEB, path="/api", methods=["GET"]), Route("site", WEB, hosts=["a.com"])]
    )
    assert router.match(b"GET", b"a.com", b"/api", forbidden) is router.routes[0]
    assert router.match(b"GET", b"a.com", b"/", forbidden) is router.routes[1]
    assert router.match(b"GET", b"b.com", b"/", forbidden) is None


def test_header_lookup_is_skipped_when_path_or_method_already_fails() -> None:
    asked: list[bytes] = []

    def lookup(name: bytes) -> bytes | None:
        asked.append(name)
        return None

    router = Router(
        [Route("canary", WEB, path="/api", methods=["POST"], headers={"X-Canary": "1"})]
    )
    router.match(b"GET", b"", b"/api", lookup)
    router.match(b"POST", b"", b"/web", lookup)
    assert asked == []
    router.match(b"POST", b"", b"/api", lookup)
    assert asked == [b"x-canary"]


# --- listeners, no match, cache --------------------------------------------------------


def test_for_listener_keeps_routes_for_all_listeners_and_that_listener() -> None:
    router = Router(
        [
            Route("admin", WEB, listeners=["internal"], path="/admin"),
            Route("secure-only", WEB, listeners=["secure", "internal"], path="/account"),
            Route("site", WEB),
        ]
    )
    assert [r.name for r in router.for_listener("internal").routes] == [
        "admin",
        "secure-only",
        "site",
    ]
    assert [r.name for r in router.for_listener("secure").routes] == ["secure-only", "site"]
    public = router.for_listener("public")
    assert [r.name for r in public.routes] == ["site"]
    assert match_name(public, path=b"/admin") == "site"


def test_no_matching_route_returns_none() -> None:
    router = Router([Route("api", WEB, hosts=["api.example.com"], path="/v1/")])
    assert match_name(router, b"api.example.com", b"/v2/") is None
    assert match_name(router, b"other.example.com", b"/v1/") is None
    assert match_name(Router([]), b"a.com") is None


def test_repeated_raw_host_gives_the_same_answer() -> None:
    router = Router([Route("api", WEB, hosts=["api.example.com"]), Route("any", WEB)])
    for _ in range(3):
        assert match_name(router, b"API.example.com:8080") == "api"
        assert match_name(router, b"other.com:8080") == "any"


def test_host_cache_stays_bounded_under_many_distinct_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(router_module, "_HOST_CACHE_ENTRIES", 8)
    router = Router([Route("a", WEB, hosts=["a.com"]), Route("any", WEB)])
    for i in range(100):
        assert match_name(router, b"h%d.test" % i) == "any"
    assert match_name(router, b"A.com:1") == "a"
    assert len(router._seen) <= 8


def test_host_cache_ignores_oversized_host_values() -> None:
    router = Router([Route("a", WEB, hosts=["a.com"]), Route("any", WEB)])
    assert match_name(router, b"x" * 10_000) == "any"
    assert router._seen == {}
