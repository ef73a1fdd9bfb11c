"""PathRewrite: strip_prefix, then pattern replacement, then add_prefix."""

import pytest

from bascule.filters.path_rewrite import PathRewrite


def test_strip_prefix_removes_a_matching_prefix() -> None:
    assert PathRewrite(strip_prefix="/v1").apply(b"/v1/users") == b"/users"


def test_strip_prefix_leaves_other_paths_alone() -> None:
    assert PathRewrite(strip_prefix="/v1").apply(b"/v2/users") == b"/v2/users"


def test_strip_prefix_of_the_whole_path_leaves_a_slash() -> None:
    assert PathRewrite(strip_prefix="/v1").apply(b"/v1") == b"/"
    assert PathRewrite(strip_prefix="/v1/").apply(b"/v1/") == b"/"


def test_strip_prefix_with_trailing_slash_keeps_the_leading_slash() -> None:
    assert PathRewrite(strip_prefix="/v1/").apply(b"/v1/users") == b"/users"


def test_strip_prefix_is_plain_bytes_like_route_prefixes() -> None:
    assert PathRewrite(strip_prefix="/v1").apply(b"/v1x") == b"/x"


def test_add_prefix_joins_with_exactly_one_slash() -> None:
    assert PathRewrite(add_prefix="/api").apply(b"/users") == b"/api/users"
    assert PathRewrite(add_prefix="/api/").apply(b"/users") == b"/api/users"
    assert PathRewrite(add_prefix="/api").apply(b"/") == b"/api/"


def test_add_prefix_of_a_lone_slash_changes_nothing() -> None:
    assert PathRewrite(add_prefix="/").apply(b"/users") == b"/users"


def test_pattern_replaces_the_first_match_with_groups() -> None:
    rewrite = PathRewrite(pattern=r"/u/(\d+)", replacement=r"/users/\1")
    assert rewrite.apply(b"/u/42/u/7") == b"/users/42/u/7"


def test_pattern_replacement_may_name_groups() -> None:
    rewrite = PathRewrite(pattern=r"^/(?P<lang>en|fr)/", replacement=r"/\g<lang>-site/")
    assert rewrite.apply(b"/fr/page") == b"/fr-site/page"


def test_pattern_that_does_not_match_leaves_the_path() -> None:
    assert PathRewrite(pattern="^/old/", replacement="/new/").apply(b"/other") == b"/other"


def test_pattern_leaving_an_empty_path_gives_a_slash() -> None:
    assert PathRewrite(pattern="^/drop$", replacement="").apply(b"/drop") == b"/"


def test_steps_run_strip_then_replace_then_add() -> None:
    rewrite = PathRewrite(
        strip_prefix="/v1", pattern=r"^/items/(\d+)$", replacement=r"/item/\1", add_prefix="/api"
    )
    # The pattern sees the stripped path, and the added prefix is not seen by the pattern.
    assert rewrite.apply(b"/v1/items/9") == b"/api/item/9"
    assert rewrite.apply(b"/items/9") == b"/api/item/9"


def test_replacement_result_without_leading_slash_still_joins_with_one() -> None:
    rewrite = PathRewrite(pattern="^/", replacement="", add_prefix="/api")
    assert rewrite.apply(b"/users") == b"/api/users"


def test_rewrite_with_nothing_to_do_returns_the_path() -> None:
    assert PathRewrite().apply(b"/a%20b") == b"/a%20b"


def test_pattern_and_replacement_go_together() -> None:
    with pytest.raises(ValueError, match="together"):
        PathRewrite(pattern="^/a")
    with pytest.raises(ValueError, match="together"):
        PathRewrite(replacement="/b")


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [("/(unclosed", "/x"), (r"/(\d+)", r"/\2"), (r"/(?P<id>\d+)", r"/\g<name>"), ("/a", "\\")],
)
def test_bad_pattern_or_replacement_fails_at_startup(pattern: str, replacement: str) -> None:
    with pytest.raises(ValueError, match="rewrite: pattern"):
        PathRewrite(pattern=pattern, replacement=replacement)


@pytest.mark.parametrize("key", ["strip_prefix", "add_prefix"])
def test_prefixes_must_start_with_a_slash(key: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        PathRewrite(**{key: "api"})
