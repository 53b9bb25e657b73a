"""A work queue keyed by service, with the guarantees of client-go's workqueue (controller-runtime's queue).

- A key is never queued twice: adding a key that is already waiting changes nothing (the dirty set).
- A key is never handed to two workers at once: a key added while a worker holds it is queued again
  only when that worker calls `done` (the processing set), so the second pass sees the newer state.
- `add_after` delays a key; `add_rate_limited` delays it by its own exponential backoff (base doubled
  per failure, capped), which `forget` resets after a success.
- Priorities, as controller-runtime's priority queue has them: a key added with a higher priority is
  handed out before those of lower ones (the resync adds its keys at `LOW`, so an event's key does not
  wait behind a whole fleet); a key already waiting that is added again at a higher priority moves up.
- `get_batch` hands out a key with other ready keys of the same group (the same cluster: one
  DescribeServices reads up to 10), from the front of the queue.

Pure Python, thread-safe, with an injectable clock: `get(timeout=0)` never blocks, so tests drive
delays with a fake clock and never sleep. Keys are any hashable values (e.g. `agent.arns.ServiceKey`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_BACKOFF_BASE_SECONDS = 1.0
DEFAULT_BACKOFF_CAP_SECONDS = 300.0
NORMAL = 0
LOW = -1  # the periodic resync: every key, behind anything an event or a retry queued
BATCH_WINDOW = 256  # how far `get_batch` looks down the queue for keys of the same group


@dataclass
class ExponentialBackoff(Generic[K]):
    """Per-key delay: `base * 2**failures`, never above `cap` (client-go's ItemExponentialFailureRateLimiter)."""

    base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS
    cap_seconds: float = DEFAULT_BACKOFF_CAP_SECONDS
    _failures: dict[K, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError(
                f"backoff needs 0 < base <= cap, got base {self.base_seconds} s and cap {self.cap_seconds} s"
            )

    def when(self, key: K) -> float:
        """The delay before `key`'s next attempt; each call counts one more failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures >= 64:  # 2**64 overflows any float cap long before; stop counting
            return self.cap_seconds
        return min(self.cap_seconds, self.base_seconds * 2.0**failures)

    def retries(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    """Keys to reconcile. Workers loop on `key = get()`, reconcile, then `done(key)`."""

    def __init__(
        self,
        *,
        backoff: ExponentialBackoff[K] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._clock = clock
        self._condition = threading.Condition(threading.Lock())
        # One FIFO per priority. An entry whose key is no longer waiting at that priority (handed out, or
        # moved up) is stale and skipped when it reaches the front.
        self._queues: dict[int, deque[K]] = {}
        self._dirty: dict[K, int] = {}  # key -> the priority it waits at
        self._processing: set[K] = set()
        # Delayed keys: (ready_at, sequence, key); `_ready_at` holds each key's earliest time, and heap
        # entries that no longer match it are stale and skipped.
        self._waiting: list[tuple[float, int, K]] = []
        self._ready_at: dict[K, float] = {}
        self._sequence = itertools.count()
        self._shutting_down = False

    # --- adding ------------------------------------------------------------------------------------------

    def add(self, key: K, *, priority: int = NORMAL) -> None:
        """Queue `key` now, unless it is already queued at this priority or higher (or the queue is
        shutting down)."""
        with self._condition:
            self._add(key, priority)

    def _add(self, key: K, priority: int = NORMAL) -> None:
        if self._shutting_down:
            return
        queued = self._dirty.get(key)
        if queued is not None and queued >= priority:
            return
        self._dirty[key] = priority
        if key in self._processing:
            return  # queued again by `done`
        self._queues.setdefault(priority, deque()).append(key)
        self._condition.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds; a key already waiting keeps the earlier of the two times."""
        with self._condition:
            if self._shutting_down:
                return
            if delay <= 0:
                self._add(key)
                return
            ready_at = self._clock() + delay
            if self._ready_at.get(key, float("inf")) <= ready_at:
                return
            self._ready_at[key] = ready_at
            heapq.heappush(self._waiting, (ready_at, next(self._sequence), key))
            self._condition.notify()  # a blocked `get` may now have an earlier time to wake at

    def add_rate_limited(self, key: K) -> float:
        """Queue `key` after its backoff (it failed); returns the delay chosen."""
        with self._condition:
            delay = self._backoff.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """`key` succeeded: its next failure starts the backoff from the base again."""
        with self._condition:
            self._backoff.forget(key)

    def retries(self, key: K) -> int:
        """Failures counted for `key` since it was last forgotten."""
        with self._condition:
            return self._backoff.retries(key)

    # --- taking --------------------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to work on, now marked as processing; None after `timeout` seconds (0: do not
        wait; None: wait until a key is ready) or once the queue is shut down and empty."""
        batch = self.get_batch(1, timeout=timeout)
        return batch[0] if batch else None

    def get_batch(
        self, limit: int, *, group: Callable[[K], Hashable] | None = None, timeout: float | None = None
    ) -> list[K]:
        """The next key, with up to `limit - 1` more ready keys of its group at the same priority (from
        the front of the queue), all marked as processing; [] as `get` returns None."""
        with self._condition:
            deadline = None if timeout is None else self._clock() + timeout
            while True:
                now = self._clock()
                self._promote(now)
                found = self._take(limit, group)
                if found:
                    return found
                if self._shutting_down:
                    return []
                wait = self._next_wait(now, deadline)
                if wait is not None and wait <= 0:
                    return []
                self._condition.wait(wait)

    def _take(self, limit: int, group: Callable[[K], Hashable] | None) -> list[K]:
        for priority in sorted(self._queues, reverse=True):
            queue = self._queues[priority]
            while queue and not self._valid(queue[0], priority):
                queue.popleft()
            if not queue:
                continue
            first = queue.popleft()
            taken = [first]
            if limit > 1 and group is not None:
                wanted = group(first)
                kept: list[K] = []
                for _ in range(min(len(queue), BATCH_WINDOW)):
                    key = queue.popleft()
                    if not self._valid(key, priority):
                        continue
                    if len(taken) < limit and key not in taken and group(key) == wanted:
                        taken.append(key)
                    else:
                        kept.append(key)
                queue.extendleft(reversed(kept))
            for key in taken:
                del self._dirty[key]
                self._processing.add(key)
            return taken
        return []

    def _valid(self, key: K, priority: int) -> bool:
        """Whether a queue entry still stands for a key waiting at this priority."""
        return self._dirty.get(key) == priority and key not in self._processing

    def _next_wait(self, now: float, deadline: float | None) -> float | None:
        """Seconds to block for: until the deadline or the next delayed key, whichever comes first."""
        candidates = [t - now for t in (deadline, self._next_ready()) if t is not None]
        if deadline is not None and deadline - now <= 0:
            return 0.0
        return min(candidates) if candidates else None

    def _next_ready(self) -> float | None:
        while self._waiting and self._ready_at.get(self._waiting[0][2]) != self._waiting[0][0]:
            heapq.heappop(self._waiting)  # stale: the key was re-scheduled earlier or already promoted
        return self._waiting[0][0] if self._waiting else None

    def _promote(self, now: float) -> None:
        while (ready := self._next_ready()) is not None and ready <= now:
            _, _, key = heapq.heappop(self._waiting)
            del self._ready_at[key]
            self._add(key)

    def done(self, key: K) -> None:
        """The worker finished `key`; if it was added meanwhile, it is queued again now."""
        with self._condition:
            self._processing.discard(key)
            priority = self._dirty.get(key)
            if priority is not None:
                self._queues.setdefault(priority, deque()).append(key)
                self._condition.notify()

    # --- state -----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys ready to be handed out (the `ecs_medic_queue_depth` metric); delayed keys count once due."""
        with self._condition:
            self._promote(self._clock())
            return sum(1 for key in self._dirty if key not in self._processing)

    @property
    def waiting(self) -> int:
        """Keys delayed by `add_after` or a backoff, not yet due."""
        with self._condition:
            self._promote(self._clock())
            return len(self._ready_at)

    @property
    def processing(self) -> int:
        with self._condition:
            return len(self._processing)

    def shutdown(self) -> None:
        """Accept no more keys and wake every blocked `get`; keys already queued are still handed out,
        delayed ones are dropped."""
        with self._condition:
            self._shutting_down = True
            self._waiting.clear()
            self._ready_at.clear()
            self._condition.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._condition:
            return self._shutting_down
