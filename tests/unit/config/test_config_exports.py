import bascule.config


def test_the_public_api_is_pinned() -> None:
    """Adding or removing a public name is a contract change other packages depend on."""
    assert sorted(bascule.config.__all__) == sorted(
        [
            "AccessLog",
            "Address",
            "Admin",
            "BindAddress",
            "Certificate",
            "Config",
            "ConfigError",
            "Duration",
            "HeaderEdits",
            "HeaderRules",
            "Keepalive",
            "Listener",
            "ListenerLimits",
            "ListenerTimeouts",
            "LearnedCookie",
            "LoadedConfig",
            "Match",
            "Problem",
            "Redirect",
            "RegexReplace",
            "Respond",
            "Rewrite",
            "Route",
            "Size",
            "Sticky",
            "StickyCookie",
            "Target",
            "Tls",
            "Upstream",
            "UpstreamTimeouts",
            "format_duration",
            "format_size",
            "json_schema",
            "load",
            "load_text",
            "parse_address",
            "parse_duration",
            "parse_size",
        ]
    )
    for name in bascule.config.__all__:
        assert getattr(bascule.config, name) is not None
