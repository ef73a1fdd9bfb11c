"""Which failures are retried: kinds, statuses, methods, bodies, attempts and the budget."""

from bascule.config.resilience import Retries
from bascule.upstream.retry_budget import RetryBudget
from bascule.upstream.retry_policy import Kind, RetryPolicy


def policy(**spec) -> RetryPolicy:
    return RetryPolicy(Retries(**spec))


def test_by_default_only_connect_failures_are_retried_for_any_method():
    default = policy()
    assert default.allows(1, Kind.CONNECT_FAILURE, 0, resendable=False)
    assert not default.allows(1, Kind.TIMEOUT, 0, resendable=True)
    assert not default.allows(1, Kind.STATUS, 503, resendable=True)
    assert default.replay_limit == 0  # nothing could be resent: no body is kept


def test_listed_kinds_and_statuses_are_retried_when_resendable():
    p = policy(on=["timeout", "reset", 503])
    assert p.allows(1, Kind.TIMEOUT, 0, resendable=True)
    assert p.allows(1, Kind.RESET, 0, resendable=True)
    assert p.allows(1, Kind.STATUS, 503, resendable=True)
    assert not p.allows(1, Kind.STATUS, 502, resendable=True)
    assert not p.allows(1, Kind.TIMEOUT, 0, resendable=False)
    assert not p.allows(1, Kind.OTHER, 0, resendable=True)
    assert p.replay_limit == 64 * 1024


def test_attempts_count_the_first_try():
    p = policy(attempts=2, on=["connect_failure"])
    assert p.allows(1, Kind.CONNECT_FAILURE, 0, resendable=True)
    assert not p.allows(2, Kind.CONNECT_FAILURE, 0, resendable=True)
    assert not policy(attempts=1).allows(1, Kind.CONNECT_FAILURE, 0, resendable=True)


def test_the_budget_has_the_last_word_except_for_connect_failures():
    budget = RetryBudget(0.0, min_per_second=0.1)  # one retry per window
    p = RetryPolicy(Retries(on=["connect_failure", 503]), budget)
    assert p.allows(1, Kind.STATUS, 503, resendable=True)
    p.spend(Kind.STATUS)
    assert not p.allows(1, Kind.STATUS, 503, resendable=True)
    p.spend(Kind.CONNECT_FAILURE)  # free: failover adds no load to anyone
    assert p.allows(1, Kind.CONNECT_FAILURE, 0, resendable=False)
