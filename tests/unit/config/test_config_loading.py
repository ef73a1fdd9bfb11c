from collections.abc import Callable
from pathlib import Path

import pytest

from bascule.config import (
    BindAddress,
    Config,
    ConfigError,
    LoadedConfig,
    load,
    load_text,
)

EXAMPLE = Path(__file__).with_name("example.yaml")


def test_the_design_example_loads_without_warnings() -> None:
    result = load(EXAMPLE)

    assert result.path == EXAMPLE
    assert result.warnings == []
    config = result.config
    assert config.workers == "auto"
    assert config.admin is not None
    assert config.admin.bind == BindAddress("127.0.0.1", 9090)
    assert [listener.name for listener in config.listeners] == ["public", "secure", "redis"]
    assert [route.name for route in config.routes] == ["api", "moved", "site"]
    assert set(config.upstreams) == {"web", "api", "redis"}


def test_the_example_is_parsed_into_engine_ready_values() -> None:
    config = load(EXAMPLE).config
    public, secure, redis = config.listeners
    api, moved, _ = config.routes

    assert (public.bind.host, public.bind.port, str(public.bind)) == (
        "0.0.0.0",
        8080,
        "0.0.0.0:8080",
    )
    assert secure.tls is not None
    assert secure.tls.certificates[0].cert == "certs/example.pem"
    assert redis.upstream == "redis"
    assert api.match.host == ["api.example.com"]
    assert api.rewrite is not None
    assert api.rewrite.strip_prefix == "/v1"
    assert api.headers.request.set == {"X-Env": "prod"}
    assert api.headers.request.remove == ["X-Debug"]
    assert moved.redirect is not None
    assert moved.redirect.status == 301
    targets = config.upstreams["web"].targets
    assert [(str(t.address), t.weight) for t in targets] == [
        ("127.0.0.1:8081", 3),
        ("127.0.0.1:8082", 1),
    ]
    assert config.upstreams["api"].targets[0].region == "eu-west"


def test_every_key_has_a_default_but_listeners(loaded: Callable[[str], LoadedConfig]) -> None:
    config = loaded(
        """\
        listeners:
          - {name: web, bind: "[::]:8080"}
        """
    ).config

    assert config.workers == 1
    assert config.admin is None
    assert config.access_log.enabled is True
    assert config.access_log.path == "-"
    assert config.drain_timeout == 30.0
    assert config.routes == []
    assert config.upstreams == {}
    listener = config.listeners[0]
    assert listener.protocol == "http"
    assert (listener.bind.host, listener.bind.port) == ("::", 8080)
    assert (listener.timeouts.header, listener.timeouts.keepalive, listener.timeouts.body) == (
        10.0,
        75.0,
        60.0,
    )
    assert listener.limits.max_header_bytes == 16 * 1024
    assert listener.limits.max_uri_bytes == 8 * 1024
    assert listener.limits.max_body_bytes == 100 * 1024 * 1024


def test_units_and_normalisation_apply_inside_the_model(
    loaded: Callable[[str], LoadedConfig],
) -> None:
    config = loaded(
        """\
        drain_timeout: 1m30s
        listeners:
          - name: web
            bind: localhost:8080
            timeouts: {header: 250ms, keepalive: 5}
            limits: {max_header_bytes: 32KiB, max_body_bytes: 1GiB}
        routes:
          - name: any-api
            match:
              host: "*.Example.COM"
              methods: [get, Post]
              path_regex: "^/v[0-9]+/"
            upstream: api
            preserve_host: false
          - name: health
            match: {path_exact: /healthz}
            respond: {status: 204}
          - name: rewritten
            upstream: api
            rewrite: {replace: {pattern: "^/old/(.*)", with: "/new/\\\\1"}}
        upstreams:
          api:
            targets: [{address: "10.0.0.1:80"}]
            timeouts: {connect: 2s}
            keepalive: {max_idle: 0}
        """
    ).config

    assert config.drain_timeout == 90.0
    listener = config.listeners[0]
    assert (listener.timeouts.header, listener.timeouts.keepalive) == (0.25, 5.0)
    assert listener.limits.max_header_bytes == 32 * 1024
    assert listener.limits.max_body_bytes == 1024**3
    route = config.routes[0]
    assert route.match.host == ["*.example.com"]
    assert route.match.methods == ["GET", "POST"]
    assert route.preserve_host is False
    respond = config.routes[1].respond
    assert respond is not None
    assert (respond.status, respond.body, respond.content_type) == (
        204,
        "",
        "text/plain; charset=utf-8",
    )
    rewrite = config.routes[2].rewrite
    assert rewrite is not None
    assert rewrite.replace is not None
    assert rewrite.replace.with_ == "/new/\\1"
    upstream = config.upstreams["api"]
    assert upstream.balance == "round_robin"
    assert (upstream.timeouts.connect, upstream.timeouts.read) == (2.0, 60.0)
    assert upstream.keepalive.max_idle == 0


def test_a_loaded_config_is_frozen() -> None:
    config = load(EXAMPLE).config
    with pytest.raises(ValueError, match="frozen"):
        config.workers = 3


def test_a_dumped_config_validates_back_to_the_same_config() -> None:
    config = load(EXAMPLE).config
    assert Config.model_validate(config.model_dump(by_alias=True)) == config
    assert Config.model_validate_json(config.model_dump_json(by_alias=True)) == config


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as raised:
        load(missing)
    (problem,) = raised.value.problems
    assert problem.file == str(missing)
    assert "cannot read" in problem.message


def test_load_text_has_no_path() -> None:
    assert load_text(EXAMPLE.read_text()).path is None
