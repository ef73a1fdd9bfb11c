"""An upstream: a named group of targets behind one balancer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bascule.balancing import Balancer, BalancerSettings, PickContext, create
from bascule.config.resilience import Retries
from bascule.upstream.admission import Admission
from bascule.upstream.retry_policy import RetryPolicy
from bascule.upstream.target import Target

TargetsWatcher = Callable[[tuple[Target, ...], tuple[Target, ...]], None]
"""Told `(added, removed)` after the targets change."""


class Upstream:
    __slots__ = (
        "_settings",
        "_sticky",
        "_watchers",
        "admission",
        "backups",
        "balancer",
        "connect_timeout",
        "feedback",
        "load_header",
        "name",
        "pick",
        "read_timeout",
        "retry",
        "send_timeout",
        "targets",
        "total_timeout",
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
        retry: RetryPolicy | None = None,
        total_timeout: float | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._sticky = sticky
        self._watchers: list[TargetsWatcher] = []
        self.targets: tuple[Target, ...]
        self.balancer: Balancer[Target]
        self.backups: Balancer[Target] | None
        self.pick: Callable[[PickContext], Target | None]
        self._use(targets)
        # Requests in flight and response times are reported to targets only where the
        # balancer reads them: round robin pays nothing for them.
        self.feedback = settings.balance in FEEDBACK_BALANCERS or settings.bounded_load is not None
        # least_load: the response header targets report their load in (lower-case name)
        self.load_header = load_header
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout
        self.total_timeout = total_timeout  # per try, from the request to the last byte
        self.retry = retry or RetryPolicy(Retries())
        # max_conns per target and the queue in front of them; None: no limits to keep
        self.admission = admission

    def _use(self, targets: Sequence[Target]) -> None:
        self.targets = tuple(targets)
        primaries = [t for t in self.targets if not t.backup]
        backups = [t for t in self.targets if t.backup]
        self.balancer = create(self._settings, primaries)
        self.backups = create(self._settings, backups) if backups else None
        # The balancer's own method unless sessions are sticky or there are backup targets:
        # no extra call per request.
        plain = not self._sticky and self.backups is None
        self.pick = self.balancer.pick if plain else self._pick_all

    def set_targets(self, targets: Sequence[Target]) -> None:
        """Replace the targets with `targets` (DNS discovery found a new set).

        The next pick reads a new balancer built over them; a target kept keeps its state.
        A target left out takes no new request: it is marked draining (so no sticky session
        leads back to it) and its idle connections close, while requests already on it
        finish, since they hold the target themselves.
        """
        before = self.targets
        self._use(targets)
        now = set(self.targets)
        removed = tuple(t for t in before if t not in now)
        was = set(before)
        added = tuple(t for t in self.targets if t not in was)
        for target in removed:
            target.state.watch(None)  # its balancer is gone
            target.state.set_available(False, by="draining")
            target.pool.close()
        for watcher in self._watchers:
            watcher(added, removed)

    def reweigh(self, target: Target, weight: int) -> None:
        """An operator set `target`'s weight: the next pick reads a balancer rebuilt with it."""
        target.weight = weight
        self.set_targets(self.targets)

    def watch_targets(self, watcher: TargetsWatcher) -> None:
        """Call `watcher(added, removed)` after every `set_targets`, e.g. to rebuild a sticky
        session map or to start and stop health checks."""
        self._watchers.append(watcher)

    def _pick_all(self, ctx: PickContext) -> Target | None:
        """The target a sticky session is bound to while it is available and not yet tried
        for this request; otherwise the balancer's choice among the primary targets; when
        none of them can take it, the backup targets' (nginx's `backup`)."""
        override = ctx.override
        if (
            isinstance(override, Target)
            and override.state.available
            and override not in ctx.exclude
        ):
            return override
        target = self.balancer.pick(ctx)
        if target is None and self.backups is not None:
            return self.backups.pick(ctx)
        return target

    def close(self) -> None:
        for target in self.targets:
            target.pool.close()


FEEDBACK_BALANCERS = frozenset(("least_conn", "power_of_two", "least_time", "least_load"))
"""Balancers that read requests in flight or response times (with any bounded_load too)."""
