"""The loop: when to run the next pass. Passes never sleep; the loop waits between them.

It waits `poll_interval_seconds`, or less when the events queue says something happened ("look
now"; the pass still re-reads everything). SIGTERM sets `stop`: the action in flight finishes, no
new one starts, and the loop returns. An exception in a pass (out of file descriptors, a bug) is
logged, counted as an `error` pass and never fatal: a crash loop would leave every service unwatched.
Only passes that saw the fleet keep the agent healthy (`agent.http.Health`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.http import Health
    from agent.policy.watch import PolicySource
    from agent.reconciler import PassReport, Reconciler


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class Loop:
    reconciler: Reconciler
    policies: PolicySource
    health: Health
    interval_seconds: float
    log: Any
    now: Callable[[], datetime] = utc_now
    wake: Callable[[float, threading.Event], bool] | None = None  # waits for an event; True when one came
    before_pass: Callable[[], object] | None = None  # e.g. renew the leader lease

    def run_once(self, stop: threading.Event) -> PassReport | None:
        try:
            self._reload_policies()
            if self.before_pass is not None:
                self.before_pass()
            report = self.reconciler.run_pass(self.now(), stop)
        except Exception as error:  # out of descriptors, a bug: counted, logged, and the next pass tries again
            self.log.exception("reconcile_failed")
            self.reconciler.metrics.passes.labels("error").inc()
            self.health.pass_finished("error", f"{type(error).__name__}: {error}")
            return None
        first = report.errors[0] if report.errors else None
        problem = f"{first.operation}: {first.message}" if first is not None else ""
        self.health.pass_finished(report.result, problem)
        return report

    def _reload_policies(self) -> None:
        reload = self.policies.refresh()
        if reload.error is not None:
            self.log.error("policies_rejected", errors=[str(e) for e in reload.error.errors], kept="last good set")
        elif reload.changed:
            current = self.policies.policies()
            self.log.info("policies_loaded", policies=[p.name for p in current.policies], files=len(current.files))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once(stop)
            if self.wake is not None:
                self.wake(self.interval_seconds, stop)
            else:
                stop.wait(self.interval_seconds)
