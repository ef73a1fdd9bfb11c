"""The retry budget caps retries at a share of recent requests, with a floor."""

from bascule.upstream.retry_budget import WINDOW, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spend(budget: RetryBudget) -> int:
    """Retries taken until the budget says no."""
    taken = 0
    while budget.can_retry():
        budget.retry()
        taken += 1
    return taken


def test_retries_are_capped_at_the_ratio_of_requests_plus_the_floor():
    clock = Clock()
    budget = RetryBudget(0.2, min_per_second=1.0, clock=clock)
    for _ in range(1000):
        budget.request()
    assert spend(budget) == 200 + WINDOW


def test_with_no_traffic_only_the_floor_remains():
    budget = RetryBudget(0.2, min_per_second=0.5, clock=Clock())
    assert spend(budget) == 5


def test_history_older_than_the_window_is_forgotten():
    clock = Clock()
    budget = RetryBudget(0.5, min_per_second=0.0, clock=clock)
    for _ in range(100):
        budget.request()
    assert spend(budget) == 50
    clock.now += WINDOW + 1
    assert budget.can_retry() is False  # no requests, no floor: nothing to spend
    for _ in range(10):
        budget.request()
    assert spend(budget) == 5


def test_requests_spread_over_the_window_all_count():
    clock = Clock()
    budget = RetryBudget(0.1, min_per_second=0.0, clock=clock)
    for second in range(WINDOW):
        for _ in range(10):
            budget.request()
        if second < WINDOW - 1:
            clock.now += 1
    assert spend(budget) == 10  # the first second's requests still count
