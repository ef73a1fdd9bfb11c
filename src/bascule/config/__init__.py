"""Configuration: the YAML contract, loading with line numbers, validation and the JSON Schema.

`load` turns a file into a frozen `Config` or raises `ConfigError` listing every problem
with file:line:column and key path. Durations are float seconds and sizes int bytes once
loaded; addresses are `BindAddress` (`.host`, `.port`, `str()`).
"""

from bascule.config.address import Address, BindAddress, parse_address
from bascule.config.listener import Certificate, Listener, ListenerLimits, ListenerTimeouts, Tls
from bascule.config.loader import LoadedConfig, load, load_text
from bascule.config.model import AccessLog, Admin, Config
from bascule.config.problem import ConfigError, Problem
from bascule.config.route import (
    HeaderEdits,
    HeaderRules,
    Match,
    Redirect,
    RegexReplace,
    Respond,
    Rewrite,
    Route,
)
from bascule.config.schema import json_schema
from bascule.config.sticky import LearnedCookie, Sticky, StickyCookie
from bascule.config.units import (
    Duration,
    Size,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)
from bascule.config.upstream import Keepalive, Target, Upstream, UpstreamTimeouts

__all__ = [
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
    "LearnedCookie",
    "Listener",
    "ListenerLimits",
    "ListenerTimeouts",
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
