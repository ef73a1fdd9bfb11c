"""An upstream: a named group of targets behind one balancer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bascule.balancing import Balancer, BalancerSettings, PickContext, create
from bascule.upstream.target import Target


class Upstream:
    __slots__ = (
        "balancer",
        "connect_timeout",
        "feedback",
        "load_header",
        "name",
        "pick",
        "read_timeout",
        "send_timeout",
        "targets",
    )

    def __init__(
        self,
        name: str,
        targets: Sequence[Target],
        settings: BalancerSettings,
        *,
        connect_timeout: float,
        read_timeout: float,
        send_timeout: float,
        load_header: bytes | None = None,
        sticky: bool = False,
    ) -> None:
        self.name = name
        self.targets = tuple(targets)
        self.balancer: Balancer[Target] = create(settings, self.targets)
        # The balancer's own method unless sessions are sticky: no extra call per request.
        self.pick: Callable[[PickContext], Target | None] = (
            self._pick_bound if sticky else self.balancer.pick
        )
        # Requests in flight and response times are reported to targets only where the
        # balancer reads them: round robin pays nothing for them.
        self.feedback = settings.balance in FEEDBACK_BALANCERS or settings.bounded_load is not None
        # least_load: the response header targets report their load in (lower-case name)
        self.load_header = load_header
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout

    def _pick_bound(self, ctx: PickContext) -> Target | None:
        """The target a sticky session is bound to while it is available and not yet tried
        for this request, otherwise the balancer's choice."""
        override = ctx.override
        if (
            isinstance(override, Target)
            and override.state.available
            and override not in ctx.exclude
        ):
            return override
        return self.balancer.pick(ctx)

    def close(self) -> None:
        for target in self.targets:
            target.pool.close()


FEEDBACK_BALANCERS = frozenset(("least_conn", "power_of_two", "least_time", "least_load"))
"""Balancers that read requests in flight or response times (with any bounded_load too)."""
