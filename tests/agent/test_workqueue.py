"""The work queue's guarantees, with a fake clock: never queued twice, never held by two workers, delays
and per-key backoff, and shutdown."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from agent.arns import ServiceKey
from agent.metrics import Metrics
from agent.workqueue import LOW, ExponentialBackoff, WorkQueue

WEB = ServiceKey("123456789012", "us-east-1", "prod", "web")
API = ServiceKey("123456789012", "us-east-1", "prod", "api")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue[ServiceKey]:
    return WorkQueue(clock=clock)


def test_a_key_is_never_queued_twice(queue):
    queue.add(WEB)
    queue.add(API)
    queue.add(WEB)
    assert len(queue) == 2
    assert [queue.get(timeout=0), queue.get(timeout=0), queue.get(timeout=0)] == [WEB, API, None]


def test_a_key_added_while_processing_comes_back_only_after_done(queue):
    queue.add(WEB)
    assert queue.get(timeout=0) == WEB
    queue.add(WEB)  # an event arrives while a worker reconciles WEB
    queue.add(WEB)
    assert len(queue) == 0, "not handed to a second worker while the first holds it"
    assert queue.get(timeout=0) is None
    queue.done(WEB)
    assert len(queue) == 1
    assert queue.get(timeout=0) == WEB
    queue.done(WEB)
    assert queue.get(timeout=0) is None


def test_done_without_a_new_add_forgets_the_key(queue):
    queue.add(WEB)
    assert queue.get(timeout=0) == WEB
    queue.done(WEB)
    assert len(queue) == 0
    assert queue.processing == 0


def test_add_after_waits_for_the_clock(queue, clock):
    queue.add_after(WEB, 30)
    assert len(queue) == 0 and queue.waiting == 1
    clock.advance(29.9)
    assert queue.get(timeout=0) is None
    clock.advance(0.1)
    assert queue.get(timeout=0) == WEB
    assert queue.waiting == 0


def test_the_earlier_of_two_delays_wins(queue, clock):
    queue.add_after(WEB, 60)
    queue.add_after(WEB, 10)
    queue.add_after(WEB, 45)
    clock.advance(10)
    assert queue.get(timeout=0) == WEB
    queue.done(WEB)
    clock.advance(100)
    assert queue.get(timeout=0) is None, "the later schedules were superseded"


def test_a_delayed_key_already_queued_is_not_queued_twice(queue, clock):
    queue.add(WEB)
    queue.add_after(WEB, 5)
    clock.advance(5)
    assert len(queue) == 1
    assert queue.get(timeout=0) == WEB
    assert queue.get(timeout=0) is None


def test_delayed_keys_come_out_in_time_order(queue, clock):
    queue.add_after(API, 20)
    queue.add_after(WEB, 10)
    clock.advance(25)
    assert [queue.get(timeout=0), queue.get(timeout=0)] == [WEB, API]


def test_rate_limited_backoff_doubles_up_to_the_cap_and_forget_resets_it(clock):
    queue: WorkQueue[ServiceKey] = WorkQueue(backoff=ExponentialBackoff(base_seconds=1, cap_seconds=10), clock=clock)
    delays = []
    for _ in range(6):
        delays.append(queue.add_rate_limited(WEB))
        clock.advance(delays[-1])
        assert queue.get(timeout=0) == WEB
        queue.done(WEB)
    assert delays == [1, 2, 4, 8, 10, 10]
    assert queue.retries(WEB) == 6
    assert queue.retries(API) == 0
    queue.forget(WEB)
    assert queue.retries(WEB) == 0
    assert queue.add_rate_limited(WEB) == 1


def test_backoff_is_per_key(clock):
    queue: WorkQueue[ServiceKey] = WorkQueue(backoff=ExponentialBackoff(base_seconds=2, cap_seconds=60), clock=clock)
    assert [queue.add_rate_limited(WEB) for _ in range(3)] == [2, 4, 8]
    assert queue.add_rate_limited(API) == 2


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError, match="0 < base <= cap"):
        ExponentialBackoff(base_seconds=0)
    with pytest.raises(ValueError, match="0 < base <= cap"):
        ExponentialBackoff(base_seconds=10, cap_seconds=5)


def test_a_long_failing_key_stays_at_the_cap():
    backoff: ExponentialBackoff[ServiceKey] = ExponentialBackoff(base_seconds=1, cap_seconds=300)
    delays = [backoff.when(WEB) for _ in range(200)]
    assert delays[-1] == 300 and max(delays) == 300


def test_shutdown_hands_out_what_is_queued_then_returns_none(queue, clock):
    queue.add(WEB)
    queue.add_after(API, 5)
    queue.shutdown()
    queue.add(API)
    assert queue.shutting_down
    assert queue.get(timeout=0) == WEB
    clock.advance(10)
    assert queue.get() is None, "a shut-down, empty queue never blocks"
    assert queue.waiting == 0


def test_shutdown_wakes_a_blocked_worker():
    queue: WorkQueue[ServiceKey] = WorkQueue()
    got: list[ServiceKey | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    queue.shutdown()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert got == [None]


def test_concurrent_workers_never_hold_the_same_key():
    """Eight workers, keys re-added while held: each key is reconciled by at most one worker at a time,
    and every add made before a `get` is served."""
    queue: WorkQueue[int] = WorkQueue()
    held: set[int] = set()
    lock = threading.Lock()
    overlaps: list[int] = []
    handled: Counter[int] = Counter()

    def worker() -> None:
        while (key := queue.get()) is not None:
            with lock:
                if key in held:
                    overlaps.append(key)
                held.add(key)
            for _ in range(200):  # some work, during which the key is added again
                pass
            if handled[key] < 3:
                queue.add(key)
            with lock:
                held.discard(key)
                handled[key] += 1
            queue.done(key)

    for key in range(50):
        queue.add(key)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = threading.Event()
    while not deadline.wait(0.01):
        if len(queue) == 0 and queue.processing == 0:
            break
    queue.shutdown()
    for thread in threads:
        thread.join(timeout=10)
    assert overlaps == []
    assert all(handled[key] >= 1 for key in range(50))


def test_get_with_a_timeout_returns_none_when_nothing_comes():
    queue: WorkQueue[ServiceKey] = WorkQueue()
    assert queue.get(timeout=0.01) is None


def test_the_depth_metric_reads_the_queue(queue, clock):
    metrics = Metrics(CollectorRegistry())
    metrics.queue_depth.set_function(lambda: len(queue))
    queue.add(WEB)
    queue.add(API)
    queue.add_after(ServiceKey("1", "r", "c", "later"), 30)
    assert metrics.registry.get_sample_value("ecs_medic_queue_depth") == 2
    assert queue.get(timeout=0) == WEB
    clock.advance(30)
    assert metrics.registry.get_sample_value("ecs_medic_queue_depth") == 2


# --- priorities and batches ---------------------------------------------------------------------------------


def key(cluster: str, service: str) -> ServiceKey:
    return ServiceKey("123456789012", "us-east-1", cluster, service)


def test_a_higher_priority_goes_first_and_a_waiting_key_moves_up(queue):
    resync = [key("prod", f"svc-{i}") for i in range(3)]
    for k in resync:
        queue.add(k, priority=LOW)
    queue.add(WEB)
    queue.add(resync[2])  # an event for a key the resync already queued
    queue.add(resync[2], priority=LOW)  # queued again at low priority: it keeps the higher one
    assert len(queue) == 4
    order = [queue.get(timeout=0) for _ in range(4)]
    assert order == [WEB, resync[2], resync[0], resync[1]]
    assert queue.get(timeout=0) is None


def test_a_key_added_at_a_higher_priority_while_held_comes_back_at_that_priority(queue):
    queue.add(WEB, priority=LOW)
    assert queue.get(timeout=0) == WEB
    queue.add(API, priority=LOW)
    queue.add(WEB)  # an event while the resync's reconcile of WEB runs
    queue.done(WEB)
    assert [queue.get(timeout=0), queue.get(timeout=0)] == [WEB, API]


def test_a_batch_takes_ready_keys_of_one_group_from_the_front(queue):
    for i in range(12):
        queue.add(key("prod", f"svc-{i:02d}"), priority=LOW)
    queue.add(key("staging", "api"), priority=LOW)
    queue.add(key("prod", "web"))
    cluster = lambda k: k.cluster  # noqa: E731
    assert queue.get_batch(10, group=cluster, timeout=0) == [key("prod", "web")], "alone at its priority"
    first = queue.get_batch(10, group=cluster, timeout=0)
    assert first == [key("prod", f"svc-{i:02d}") for i in range(10)]
    second = queue.get_batch(10, group=cluster, timeout=0)
    assert second == [key("prod", "svc-10"), key("prod", "svc-11")]
    assert queue.get_batch(10, group=cluster, timeout=0) == [key("staging", "api")]
    assert queue.processing == 14
    for k in [*first, *second]:
        queue.done(k)
    assert queue.get_batch(10, group=cluster, timeout=0) == []


def test_a_batch_never_holds_a_key_twice(queue):
    queue.add(WEB, priority=LOW)
    queue.add(WEB)  # moved up: its low entry is stale
    queue.add(API)
    batch = queue.get_batch(10, group=lambda k: k.cluster, timeout=0)
    assert batch == [WEB, API]
    assert queue.get_batch(10, group=lambda k: k.cluster, timeout=0) == []
