"""An upstream: a named group of targets behind one balancer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bascule.balancing import Balancer, PickContext, create
from bascule.upstream.target import Target


class Upstream:
    __slots__ = (
        "balancer",
        "connect_timeout",
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
        balance: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        send_timeout: float,
    ) -> None:
        self.name = name
        self.targets = tuple(targets)
        self.balancer: Balancer[Target] = create(balance, self.targets)
        # the balancer's own method: no extra call on the request path
        self.pick: Callable[[PickContext], Target | None] = self.balancer.pick
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout

    def close(self) -> None:
        for target in self.targets:
            target.pool.close()
