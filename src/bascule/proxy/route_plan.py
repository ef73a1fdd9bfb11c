"""A route compiled for the hot path: its action, and its filters reduced to bytes."""

from __future__ import annotations

import re

from bascule.filters.cache import HttpCache
from bascule.filters.compress import Compression
from bascule.filters.path_rewrite import PathRewrite
from bascule.proxy.selection import Selection
from bascule.routing.route import Route
from bascule.upstream.upstream import Upstream


class RoutePlan:
    __slots__ = (
        "cache",
        "compression",
        "name",
        "preserve_host",
        "request_added",
        "request_remove",
        "respond_lines",
        "response_added",
        "response_remove",
        "rewrite",
        "route",
        "selection",
        "upgrades",
        "upstream",
    )

    def __init__(
        self,
        route: Route,
        upstream: Upstream | None,
        *,
        rewrite: PathRewrite | None = None,
        request_added: bytes = b"",
        request_remove: re.Pattern[bytes] | None = None,
        response_added: bytes = b"",
        response_remove: re.Pattern[bytes] | None = None,
        respond_lines: bytes = b"",
        selection: Selection | None = None,
        compression: Compression | None = None,
        cache: HttpCache | None = None,
        upgrades: frozenset[bytes] = frozenset((b"websocket",)),
    ) -> None:
        self.route = route
        self.name = route.name
        self.upstream = upstream
        self.preserve_host = route.preserve_host
        self.rewrite = rewrite
        self.request_added = request_added  # "\r\nName: value" lines appended upstream
        self.request_remove = request_remove  # header lines dropped before forwarding
        self.response_added = response_added
        self.response_remove = response_remove
        self.respond_lines = respond_lines  # a respond action's own header lines
        self.selection = selection  # the upstream's hash key / sticky session, if any
        self.compression = compression  # the compress: filter, if the route has one
        self.cache = cache  # the cache: filter, if the route has one
        self.upgrades = upgrades  # protocols an Upgrade may switch to, lower-case

    def allows_upgrade(self, upgrade: bytes) -> bool:
        """Whether this route lets a client switch to every protocol `upgrade` (an Upgrade
        header's lower-case value) offers: the target could pick any of them."""
        for offer in upgrade.split(b","):
            if offer.strip().partition(b"/")[0] not in self.upgrades:
                return False
        return True
