"""Actions: proxy, redirect (Location templates) and respond."""

import dataclasses

import pytest

from bascule.routing import ProxyTo, Redirect, Respond


def test_proxy_to_names_its_upstream_and_is_frozen() -> None:
    action = ProxyTo("api")
    assert action.upstream == "api"
    with pytest.raises(dataclasses.FrozenInstanceError):
        action.upstream = "web"  # type: ignore[misc]


def test_redirect_expands_every_placeholder() -> None:
    redirect = Redirect("{scheme}://{host}/new{path}?{query}", status=302)
    assert redirect.location(b"https", b"example.com", b"/a/b", b"x=1") == (
        b"https://example.com/new/a/b?x=1"
    )


def test_redirect_request_uri_includes_the_query_when_present() -> None:
    redirect = Redirect("https://example.com{request_uri}")
    assert redirect.location(b"http", b"h", b"/p", b"q=1&r=2") == b"https://example.com/p?q=1&r=2"


def test_redirect_request_uri_has_no_question_mark_without_a_query() -> None:
    redirect = Redirect("https://example.com{request_uri}")
    assert redirect.location(b"http", b"h", b"/p", b"") == b"https://example.com/p"


def test_redirect_without_placeholders_returns_the_target() -> None:
    redirect = Redirect("https://example.com/new/", status=308)
    assert redirect.location(b"http", b"h", b"/old/", b"a=b") == b"https://example.com/new/"


def test_redirect_doubled_braces_are_literal_braces() -> None:
    redirect = Redirect("/x/{{id}}{path}")
    assert redirect.location(b"http", b"h", b"/p", b"") == b"/x/{id}/p"


def test_redirect_passes_the_host_through_with_its_port() -> None:
    redirect = Redirect("{scheme}://{host}{request_uri}")
    assert redirect.location(b"http", b"a.com:8080", b"/", b"") == b"http://a.com:8080/"


def test_redirect_default_status_is_302_as_in_the_config() -> None:
    assert Redirect("/x").status == 302


@pytest.mark.parametrize("template", ["/{pth}", "/{path!r}", "/{path:>10}", "/{0}", "/{"])
def test_redirect_rejects_unknown_or_malformed_placeholders(template: str) -> None:
    with pytest.raises(ValueError, match="redirect target"):
        Redirect(template)


def test_redirect_rejects_a_line_break_in_the_target() -> None:
    with pytest.raises(ValueError, match="line break"):
        Redirect("/x\r\nSet-Cookie: a=b")


@pytest.mark.parametrize("status", [200, 300, 304, 404])
def test_redirect_rejects_a_status_that_is_not_a_redirect(status: int) -> None:
    with pytest.raises(ValueError, match="not a redirect"):
        Redirect("/x", status=status)


def test_redirects_with_the_same_target_are_equal() -> None:
    assert Redirect("/x{path}", 302) == Redirect("/x{path}", 302)


def test_respond_holds_status_body_type_and_headers() -> None:
    respond = Respond(503, b"down", b"text/plain", ((b"Retry-After", b"30"),))
    assert respond.status == 503
    assert respond.body == b"down"
    assert respond.content_type == b"text/plain"
    assert respond.headers == ((b"Retry-After", b"30"),)


def test_respond_defaults_to_an_empty_text_body() -> None:
    respond = Respond(204)
    assert (respond.body, respond.content_type, respond.headers) == (
        b"",
        b"text/plain; charset=utf-8",
        (),
    )


@pytest.mark.parametrize("status", [99, 199, 600])
def test_respond_rejects_a_status_outside_200_to_599(status: int) -> None:
    with pytest.raises(ValueError, match="between 200 and 599"):
        Respond(status)
