"""ECS's request throttling in the world: a token bucket per category of actions, per account and Region,
at AWS's published rates (`agent.aws.ecs_rates`), answering as AWS does when a bucket is empty
(HTTP 400, `ThrottlingException`, "Rate exceeded").

Off by default; `World.throttling(enabled=True)` switches it on. Buckets refill on the wall clock, as
AWS's do (the simulated clock only moves when a test advances it), or on any clock a test passes, so
that a client and the world can share one fake clock and no test sleeps. A throttled call takes no
token, and the world's own calls (builders, the runtime) are never throttled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.aws.ecs_rates import EcsBucket, ecs_bucket


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class Throttle:
    """Whether each ECS request finds a token in its bucket."""

    enabled: bool = False
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str, str], _Bucket] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    throttled: int = field(default=0, init=False)

    def configure(self, *, enabled: bool, clock: Callable[[], float] | None = None) -> None:
        """Switch throttling on or off; every bucket starts full again."""
        with self._lock:
            self.enabled = enabled
            if clock is not None:
                self.clock = clock
            self._buckets.clear()
            self.throttled = 0

    def admit(self, account: str, region: str, service: str, operation: str) -> bool:
        """Take a token for the request, or say it is throttled. Non-ECS requests always pass."""
        if not self.enabled or service != "ecs":
            return True
        published = ecs_bucket(operation)
        with self._lock:
            now = self.clock()
            bucket = self._bucket(account, region, published, now)
            bucket.tokens = min(published.burst, bucket.tokens + (now - bucket.updated) * published.rate)
            bucket.updated = now
            if bucket.tokens < 1:
                self.throttled += 1
                return False
            bucket.tokens -= 1
            return True

    def _bucket(self, account: str, region: str, published: EcsBucket, now: float) -> _Bucket:
        key = (account, region, published.name)
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = _Bucket(published.burst, now)
        return found
