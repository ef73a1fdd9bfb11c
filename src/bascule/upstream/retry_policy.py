"""Whether a failed try is sent again: an upstream's `retries:` rules and budget.

A retry goes to a target not yet tried for the request (the balancer's `exclude`), and
never once a byte of the response has reached the client (the proxy's side of it). A
connect failure sent nothing, so it is retried for any method and outside the budget;
after that only the methods
in `retries.methods` (idempotent ones by default), and a request body only if it was kept
whole (`replay_buffer`). A reused keep-alive connection that the target had already closed
is not the target failing: the proxy sends the request once more on a fresh connection,
outside these rules.
"""

from __future__ import annotations

from enum import StrEnum

from bascule.config.resilience import Retries
from bascule.upstream.retry_budget import RetryBudget


class Kind(StrEnum):
    """What went wrong with a try, in the terms of `retries.on`."""

    CONNECT_FAILURE = "connect_failure"  # refused or not accepted in time: nothing was sent
    TIMEOUT = "timeout"  # no response (head) in time: read, per-try or total timeout
    RESET = "reset"  # the target closed or reset the connection before a response head
    STATUS = "status"  # the target answered with a status that `retries.on` names
    OTHER = "other"  # anything else: an invalid response, a failure mid-response


class RetryPolicy:
    __slots__ = (
        "attempts",
        "budget",
        "kinds",
        "methods",
        "per_try_timeout",
        "replay_limit",
        "statuses",
    )

    def __init__(self, spec: Retries, budget: RetryBudget | None = None) -> None:
        self.attempts = spec.attempts
        self.kinds = frozenset(Kind(on) for on in spec.on if isinstance(on, str))
        self.statuses = frozenset(on for on in spec.on if isinstance(on, int))
        self.methods = frozenset(m.encode() for m in spec.methods)
        resends = self.attempts > 1 and bool(self.statuses or self.kinds - {Kind.CONNECT_FAILURE})
        # a body is kept for a retry only where a retry could resend it
        self.replay_limit = spec.replay_buffer if resends else 0
        self.per_try_timeout = spec.per_try_timeout
        self.budget = budget or RetryBudget(spec.budget)

    def allows(self, tries: int, kind: Kind, status: int, resendable: bool) -> bool:
        """May a request tried `tries` times be tried again after a failure of `kind`
        (`status` for Kind.STATUS)? `resendable`: its method is allowed and its body, if
        any, was kept whole. The budget is checked here, and spent by `spend`."""
        if tries >= self.attempts:
            return False
        if kind is Kind.STATUS:
            if status not in self.statuses:
                return False
        elif kind not in self.kinds:
            return False
        if kind is Kind.CONNECT_FAILURE:
            return True  # failover: nothing reached the target, and nothing is added to its load
        return resendable and self.budget.can_retry()

    def spend(self, kind: Kind) -> None:
        """A retry after a failure of `kind` is being sent."""
        if kind is not Kind.CONNECT_FAILURE:
            self.budget.retry()
