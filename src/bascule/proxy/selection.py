"""What a request tells the balancer beyond the client address: the upstream's hash key and
the target a sticky session is bound to. Built per upstream; an upstream with neither has
no Selection and its requests share one PickContext per connection.
"""

from __future__ import annotations

from bascule.balancing import PickContext
from bascule.filters.request_key import RequestKey
from bascule.filters.sticky import Affinity
from bascule.http.head import RequestHead, ResponseHead
from bascule.upstream.target import Target


class Selection:
    __slots__ = ("affinity", "request_key")

    def __init__(self, request_key: RequestKey | None, affinity: Affinity[Target] | None) -> None:
        self.request_key = request_key
        self.affinity = affinity

    def context(self, head: RequestHead, client_ip: bytes) -> PickContext:
        key = self.request_key(head, client_ip) if self.request_key is not None else None
        bound = self.affinity.bound_target(head, client_ip) if self.affinity is not None else None
        return PickContext(client_ip, key, bound)

    def response_lines(self, ex_pick: PickContext, target: Target, head: ResponseHead) -> bytes:
        """Lines to add to `target`'s response (a sticky cookie), after learning from it."""
        affinity = self.affinity
        if affinity is None:
            return b""
        affinity.learn(head, target)
        bound = ex_pick.override
        return affinity.response_lines(target, bound if isinstance(bound, Target) else None)
