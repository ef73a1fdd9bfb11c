"""The indexed Router agrees with a naive linear matcher on random tables and requests."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.routing import ProxyTo, Route, Router

HOST_PATTERNS = ["a.com", "b.a.com", "*.a.com", "*.b.a.com", "*.com", "c.org", "[::1]", "127.0.0.1"]
PATHS = ["/", "/api", "/api/", "/b", "/api/1", "/api/x/2"]
REGEXES = [r"^/api/\d+$", "b", "^/$", r"/\d"]


def reference_normalize(raw: bytes) -> bytes:
    """The host normalization rules, spelled as a regex rather than as the code does."""
    found = re.fullmatch(rb"(\[[^\]]*\])(?::.*)?|([^:\[][^:]*|)(?::.*)?|(\[.*)", raw.lower(), re.S)
    assert found is not None
    bracketed, name, unclosed = found.groups()
    if bracketed is not None or unclosed is not None:
        return bracketed if bracketed is not None else unclosed
    return re.sub(rb"\.$", b"", name)


def reference_host_matches(pattern: bytes, host: bytes) -> bool:
    if pattern.startswith(b"*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def reference_match(
    routes: list[Route], method: bytes, host: bytes, path: bytes, headers: dict[bytes, bytes]
) -> Route | None:
    """Every route, in order, every criterion checked directly: slow and obviously right."""
    normal = reference_normalize(host)
    for route in routes:
        if route.hosts is not None and not any(
            reference_host_matches(p, normal) for p in route.hosts
        ):
            continue
        if route.path_prefix is not None and not path.startswith(route.path_prefix):
            continue
        if route.path_exact is not None and path != route.path_exact:
            continue
        if route.path_regex is not None and not route.path_regex.search(path):
            continue
        if route.methods is not None and method not in route.methods:
            continue
        if any(headers.get(name) != value for name, value in route.headers):
            continue
        return route
    return None


@st.composite
def routes(draw: st.DrawFn) -> list[Route]:
    table = []
    for i in range(draw(st.integers(0, 8))):
        kwargs: dict[str, object] = {}
        if draw(st.booleans()):
            kwargs["hosts"] = draw(st.lists(st.sampled_from(HOST_PATTERNS), min_size=1, max_size=3))
        path_kind = draw(st.sampled_from(["none", "path", "path_exact", "path_regex"]))
        if path_kind != "none":
            kwargs[path_kind] = draw(
                st.sampled_from(REGEXES if path_kind == "path_regex" else PATHS)
            )
        if draw(st.booleans()):
            kwargs["methods"] = draw(st.lists(st.sampled_from(["GET", "POST"]), min_size=1))
        if draw(st.booleans()):
            kwargs["headers"] = {"X-A": draw(st.sampled_from(["1", "2"]))}
        table.append(Route(f"r{i}", ProxyTo("u"), **kwargs))  # type: ignore[arg-type]
    return table


request_hosts = st.one_of(
    st.sampled_from(
        [
            b"a.com",
            b"A.COM:80",
            b"b.a.com",
            b"x.b.a.com",
            b"x.a.com.",
            b"a.com.:1",
            b"com",
            b"x.com",
            b".a.com",
            b"a..com",
            b"c.org",
            b"[::1]",
            b"[::1]:8080",
            b"127.0.0.1:80",
            b"",
        ]
    ),
    st.binary(max_size=12).map(lambda b: bytes(b"abcom.:[]1"[x % 10] for x in b)),
)
requests = st.tuples(
    st.sampled_from([b"GET", b"POST", b"get"]),
    request_hosts,
    st.sampled_from([p.encode() for p in PATHS] + [b"/api/12", b"/apix", b"/bb", b""]),
    st.dictionaries(st.just(b"x-a"), st.sampled_from([b"1", b"2"])),
)


@settings(max_examples=400)
@given(routes(), st.lists(requests, min_size=1, max_size=10))
def test_indexed_router_agrees_with_linear_reference(
    table: list[Route], batch: list[tuple[bytes, bytes, bytes, dict[bytes, bytes]]]
) -> None:
    router = Router(table)
    for method, host, path, headers in (
        batch * 2
    ):  # twice: the raw-host cache must not change answers
        expected = reference_match(table, method, host, path, headers)
        assert router.match(method, host, path, headers.get) is expected


@given(
    routes(), st.sampled_from(["public", "secure"]), st.lists(st.sampled_from(["public", "secure"]))
)
def test_for_listener_keeps_exactly_the_routes_that_listener_serves(
    table: list[Route], listener: str, assigned: list[str]
) -> None:
    tagged = [
        Route(r.name, r.action, listeners=[assigned[i]]) if i < len(assigned) else r
        for i, r in enumerate(table)
    ]
    expected = [r for r in tagged if r.listeners is None or listener in r.listeners]
    assert list(Router(tagged).for_listener(listener).routes) == expected
