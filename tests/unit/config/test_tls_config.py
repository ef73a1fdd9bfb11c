"""TLS keys of the config: versions, client certificates, HSTS, redirect_https, upstream tls."""

from collections.abc import Callable

import pytest

from bascule.config import LoadedConfig, Problem

Problems = Callable[[str], list[Problem]]
Loaded = Callable[[str], LoadedConfig]

CERTS = "certificates: [{cert: a.pem, key: a.key}]"


def where(problem: Problem) -> tuple[int | None, int | None, str]:
    return (problem.line, problem.column, problem.path)


@pytest.mark.parametrize(("written", "version"), [("1.2", "1.2"), ("1.3", "1.3"), ('"1.3"', "1.3")])
def test_min_version_reads_as_yaml_writes_it(loaded: Loaded, written: str, version: str) -> None:
    config = loaded(
        f"""\
        listeners:
          - {{name: s, bind: "[::]:443", protocol: https, tls: {{min_version: {written}, {CERTS}}}}}
        """
    ).config
    tls = config.listeners[0].tls
    assert tls is not None
    assert tls.min_version == version


def test_tls_defaults_are_tls_1_2_and_no_client_certificates(loaded: Loaded) -> None:
    listener = loaded(
        f"""\
        listeners:
          - {{name: s, bind: "0.0.0.0:443", protocol: https, tls: {{{CERTS}}}}}
        """
    ).config.listeners[0]
    assert listener.tls is not None
    assert (listener.tls.min_version, listener.tls.client_ca, listener.tls.ciphers) == (
        "1.2",
        None,
        None,
    )
    assert (listener.hsts, listener.redirect_https) == (None, None)


def test_tls_1_1_cannot_be_asked_for(problems: Problems) -> None:
    (problem,) = problems(
        f"""\
        listeners:
          - {{name: s, bind: "0.0.0.0:443", protocol: https, tls: {{min_version: 1.1, {CERTS}}}}}
        """
    )
    assert problem.path == "listeners[0].tls.min_version"
    assert "'1.2' or '1.3'" in problem.message


def test_verify_client_needs_a_client_ca(problems: Problems) -> None:
    (problem,) = problems(
        f"""\
        listeners:
          - name: s
            bind: 0.0.0.0:443
            protocol: https
            tls: {{verify_client: optional, {CERTS}}}
        """
    )
    assert problem.path == "listeners[0].tls"
    assert "add `client_ca`" in problem.message


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("true", "max-age=31536000"),
        ("{max_age: 180d}", "max-age=15552000"),
        ("{max_age: 2y, include_subdomains: true, preload: true}", "max-age=63072000; "
         "includeSubDomains; preload"),
        ("{max_age: 1h}", "max-age=3600"),
        ("{max_age: 0}", "max-age=0"),  # how a site tells browsers to forget it
    ],
)  # fmt: skip
def test_hsts_values(loaded: Loaded, written: str, value: str) -> None:
    listener = loaded(
        f"""\
        listeners:
          - {{name: s, bind: "0.0.0.0:443", protocol: https, hsts: {written}, tls: {{{CERTS}}}}}
        """
    ).config.listeners[0]
    assert listener.hsts is not None
    assert listener.hsts.header_value() == value


def test_hsts_preload_needs_subdomains_and_a_year(problems: Problems) -> None:
    (problem,) = problems(
        f"""\
        listeners:
          - name: s
            bind: 0.0.0.0:443
            protocol: https
            hsts: {{max_age: 180d, preload: true}}
            tls: {{{CERTS}}}
        """
    )
    assert problem.path == "listeners[0].hsts"
    assert "include_subdomains: true and max_age of at least 1y" in problem.message


def test_hsts_is_for_https_and_redirect_https_for_http(problems: Problems) -> None:
    hsts, redirect = problems(
        f"""\
        listeners:
          - {{name: plain, bind: "0.0.0.0:80", hsts: true}}
          - {{name: s, bind: "[::]:443", protocol: https, redirect_https: true, tls: {{{CERTS}}}}}
        """
    )
    assert where(hsts) == (2, 45, "listeners[0].hsts")
    assert hsts.message == "`hsts` only applies to https listeners; this one is http"
    assert where(redirect) == (3, 66, "listeners[1].redirect_https")
    assert redirect.message == "`redirect_https` only applies to http listeners; this one is https"


@pytest.mark.parametrize(("written", "port"), [("true", 443), ("{port: 8443}", 8443)])
def test_redirect_https_true_or_a_port(loaded: Loaded, written: str, port: int) -> None:
    listener = loaded(
        f"""\
        listeners:
          - {{name: plain, bind: "0.0.0.0:80", redirect_https: {written}}}
        """
    ).config.listeners[0]
    assert listener.redirect_https is not None
    assert listener.redirect_https.port == port


def test_redirect_https_false_is_off(loaded: Loaded) -> None:
    listener = loaded(
        """\
        listeners:
          - {name: plain, bind: "0.0.0.0:80", redirect_https: false}
        """
    ).config.listeners[0]
    assert listener.redirect_https is None


UPSTREAM = """\
listeners: [{name: p, bind: "0.0.0.0:80"}]
routes: [{name: r, upstream: api}]
upstreams:
  api:
    targets: [{address: "10.0.0.1:443"}]
    tls: %s
"""


def test_upstream_tls_true_verifies_with_the_system_cas(loaded: Loaded) -> None:
    tls = loaded(UPSTREAM % "true").config.upstreams["api"].tls
    assert tls is not None
    assert (tls.verify, tls.ca, tls.sni, tls.cert, tls.key) == (True, None, None, None, None)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("{cert: c.pem}", "a client certificate needs both `cert` and `key`"),
        ("{verify: false, ca: ca.pem}", "`ca` has no effect with verify: false"),
        ("{sni: 'not a name'}", "sni 'not a name' is not a host name"),
    ],
)
def test_upstream_tls_inconsistencies(problems: Problems, written: str, message: str) -> None:
    (problem,) = problems(UPSTREAM % written)
    assert problem.path == "upstreams.api.tls"
    assert message in problem.message


def test_a_dumped_tls_config_loads_back(loaded: Loaded) -> None:
    config = loaded(
        f"""\
        listeners:
          - {{name: s, bind: "0.0.0.0:443", protocol: https, hsts: true, tls: {{{CERTS}}}}}
          - {{name: p, bind: "0.0.0.0:80", redirect_https: true}}
        routes: [{{name: r, upstream: api}}]
        upstreams:
          api: {{targets: [{{address: "10.0.0.1:443"}}], tls: {{sni: api.test}}}}
        """
    ).config
    dumped = config.model_dump(mode="json", by_alias=True)
    assert type(config).model_validate(dumped) == config
