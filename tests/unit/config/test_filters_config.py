"""`cache:` and `compress:` on a route: defaults, and the errors an operator sees."""

from __future__ import annotations

from collections.abc import Callable

from bascule.config import LoadedConfig, Problem

Problems = Callable[[str], list[Problem]]
Loaded = Callable[[str], LoadedConfig]

HEAD = """\
listeners: [{name: web, bind: "0.0.0.0:8080"}]
upstreams: {app: {targets: [{address: "127.0.0.1:8081"}]}}
routes:
"""


def route(body: str) -> str:
    return HEAD + f"  - {{name: r, {body}}}\n"


def test_the_defaults(loaded: Loaded) -> None:
    spec = loaded(route("upstream: app, cache: {}, compress: {}")).config.routes[0]
    assert spec.cache is not None
    assert spec.compress is not None
    cache, compress = spec.cache, spec.compress
    assert (cache.store, cache.max_size, cache.max_object) == ("memory", 256 << 20, 8 << 20)
    assert (cache.key, cache.collapse_timeout) == ("{scheme}://{host}{path}{query}", 5.0)
    assert compress.algorithms == ["zstd", "br", "gzip"]
    assert (compress.min_size, compress.level.gzip, compress.level.br) == (1024, 5, 4)
    assert "text/*" in compress.types


def test_filters_need_an_upstream(problems: Problems) -> None:
    (problem,) = problems(route("respond: {status: 200}, cache: {}"))
    assert "cache applies to an upstream's responses" in problem.message
    (problem,) = problems(route("redirect: {to: /x}, compress: {}"))
    assert "compress applies to an upstream's responses" in problem.message


def test_a_key_template_must_name_known_placeholders_and_the_path(problems: Problems) -> None:
    (problem,) = problems(route('upstream: app, cache: {key: "{host}{cookie}"}'))
    assert problem.path == "routes[0].cache.key"
    assert "unknown placeholder {cookie}" in problem.message
    (problem,) = problems(route('upstream: app, cache: {key: "{host}"}'))
    assert "must include {path}" in problem.message


def test_compress_refuses_unknown_algorithms_repeats_and_bad_types(problems: Problems) -> None:
    found = problems(route("upstream: app, compress: {algorithms: [gzip, gzip, lzma]}"))
    assert any("lzma" in p.message or "literal" in p.message.lower() for p in found)
    (problem,) = problems(route("upstream: app, compress: {types: [html]}"))
    assert "not a media type" in problem.message
    (problem,) = problems(route("upstream: app, compress: {level: {gzip: 12}}"))
    assert problem.path == "routes[0].compress.level.gzip"


def test_an_admin_listener_off_loopback_needs_a_token(problems: Problems, loaded: Loaded) -> None:
    base = HEAD + "  - {name: r, upstream: app}\n"
    (problem,) = problems(base + "admin: {bind: 0.0.0.0:9090}\n")
    assert problem.path == "admin"
    assert "set admin.token_file" in problem.message
    loaded(base + "admin: {bind: 0.0.0.0:9090, token_file: /etc/bascule/admin.token}\n")
    loaded(base + 'admin: {bind: "[::1]:9090"}\n')


def test_tracing_needs_request_ids(problems: Problems, loaded: Loaded) -> None:
    base = HEAD + "  - {name: r, upstream: app}\n"
    tracing = "tracing: {otlp_endpoint: 'http://127.0.0.1:4318/v1/traces'}\n"
    assert loaded(base + tracing).config.tracing is not None
    (problem,) = problems(base + tracing + "request_ids: false\n")
    assert "request_ids: false" in problem.message
