"""The agent's explicit share of ECS's API throttling buckets, per account and Region.

ECS throttles each account and Region with one token bucket per category of actions (`ecs_rates`),
shared with everyone else calling it. The agent takes `fraction` of every bucket, both its burst and
its refill rate, and divides that among its `replicas`, so N replicas together never take more than
the fraction. A call waits for a token of its bucket (`acquire` returns the seconds waited), so the
agent never exceeds its share: in any interval of T seconds it makes at most `burst + rate * T` calls
per bucket. Only ECS is budgeted here; other APIs pass through at once.

`ecs_medic_aws_budget_remaining{account,region,bucket}` reads each bucket's tokens when scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.aws.ecs_rates import BY_NAME, EcsBucket, ecs_bucket

if TYPE_CHECKING:
    from agent.metrics import Metrics
    from agent.settings import Settings

DEFAULT_FRACTION = 0.5


class _Bucket:
    """A token bucket that hands out reservations: a caller takes its token now (the count may go
    negative) and waits until the refill has paid for it, so concurrent callers queue in order."""

    def __init__(self, burst: float, rate: float, clock: Callable[[], float]) -> None:
        self.burst, self.rate = burst, rate
        self._clock = clock
        self._tokens = burst
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it."""
        with self._lock:
            self._refill(self._clock())
            self._tokens -= 1
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def available(self) -> float:
        """Whole-or-partial tokens left now (0 while callers are waiting for theirs)."""
        with self._lock:
            self._refill(self._clock())
            return max(0.0, self._tokens)


@dataclass(frozen=True, slots=True)
class Share:
    """The agent's (one replica's) share of one bucket."""

    bucket: str
    burst: float
    rate: float


class ApiBudget:
    """Every (account, Region, bucket) the agent has called, each its own token bucket."""

    def __init__(
        self,
        *,
        fraction: float = DEFAULT_FRACTION,
        replicas: int = 1,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"the API budget fraction must be in (0, 1], got {fraction}")
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.fraction, self.replicas = fraction, replicas
        self._metrics = metrics
        self._clock, self._sleep = clock, sleep
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ApiBudget:
        """`ECS_MEDIC_API_BUDGET_FRACTION`, divided by `ECS_MEDIC_REPLICAS` when the settings have it."""
        replicas = int(getattr(settings, "replicas", 1) or 1)
        return cls(fraction=settings.api_budget_fraction, replicas=replicas, metrics=metrics, clock=clock, sleep=sleep)

    def share(self, bucket: EcsBucket | str) -> Share:
        """This replica's burst and refill rate for `bucket` (at least one token of burst)."""
        published = BY_NAME[bucket] if isinstance(bucket, str) else bucket
        part = self.fraction / self.replicas
        return Share(published.name, max(1.0, published.burst * part), published.rate * part)

    def _bucket(self, account: str, region: str, published: EcsBucket) -> _Bucket:
        key = (account, region, published.name)
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                share = self.share(published)
                found = self._buckets[key] = _Bucket(share.burst, share.rate, self._clock)
                if self._metrics is not None:
                    self._metrics.aws_budget_remaining.labels(account, region, published.name).set_function(
                        found.available
                    )
            return found

    def acquire(self, account: str, region: str, api: str, operation: str) -> float:
        """Wait for a token of the bucket `operation` draws from; returns the seconds waited."""
        if api != "ecs":
            return 0.0
        wait = self._bucket(account, region, ecs_bucket(operation)).reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def remaining(self, account: str, region: str, bucket: str) -> float:
        """Tokens left in the agent's share of `bucket` (a full share if never used)."""
        with self._lock:
            found = self._buckets.get((account, region, bucket))
        return found.available() if found is not None else self.share(bucket).burst

    def scope(self, account: str, region: str) -> ScopedBudget:
        """The budget of one account and Region: what one gateway consults."""
        return ScopedBudget(self, account, region)


@dataclass(frozen=True, slots=True)
class ScopedBudget:
    budget: ApiBudget
    account: str
    region: str

    def acquire(self, api: str, operation: str) -> float:
        """Wait for a token for `api`'s `operation` in this account and Region; returns the seconds waited."""
        return self.budget.acquire(self.account, self.region, api, operation)
