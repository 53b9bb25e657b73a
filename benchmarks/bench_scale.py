"""The building blocks of scale, at 10,000 services: the work queue and the event intake (throughput),
the evidence store and the intake's memory (tracemalloc), and the API budget holding a burst inside
ECS's rates (on a simulated clock, so it takes no time).

Exits non-zero if the evidence store or the intake needs more memory than its share of the agent's
250 MB at 10,000 services, or if the budget ever lets more calls through than its share allows.
"""

from __future__ import annotations

import gc
import json
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.arns import ServiceKey
from agent.aws.budget import ApiBudget
from agent.events import EventIntake
from agent.evidence import MemoryEvidence
from agent.workqueue import WorkQueue

SERVICES = 10_000
ACCOUNT, REGION = "123456789012", "us-east-1"
START = datetime(2026, 4, 19, 3, 0, tzinfo=UTC)
EVIDENCE_LIMIT_MB = 64.0  # the evidence store's share of 250 MB for the whole agent
INTAKE_LIMIT_MB = 64.0
BURST = 1000


def _keys() -> list[ServiceKey]:
    return [ServiceKey(ACCOUNT, REGION, f"fleet-{i % 20 + 1}", f"svc-{i:05d}") for i in range(SERVICES)]


def _rate(work: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = work()
    return count / (time.perf_counter() - started)


def queue_throughput() -> float:
    """Keys through the queue per second: each added three times (events and the resync), got, done."""
    keys = _keys()
    queue: WorkQueue[ServiceKey] = WorkQueue()

    def work() -> int:
        handled = 0
        for _ in range(5):
            for key in keys:
                queue.add(key)
                queue.add(key)
            for key in keys[::7]:
                queue.add(key)
            while (key := queue.get(timeout=0)) is not None:
                queue.done(key)
                handled += 1
        return handled

    return _rate(work)


def _task(key: ServiceKey, index: int, version: int, stopped: datetime) -> dict[str, Any]:
    task_id = f"{index:032x}"
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{key.cluster}/{task_id}"
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{key.service}:v{index % 7}"
    return {
        "attachments": [{"id": f"{index:08x}-0000-4000-8000-000000000000", "type": "eni", "status": "DELETED"}],
        "availabilityZone": f"{REGION}a",
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{key.cluster}",
        "containers": [
            {
                "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{key.cluster}/{task_id}/{index:08x}",
                "exitCode": 137,
                "image": image,
                "lastStatus": "STOPPED",
                "name": "app",
                "reason": "OutOfMemoryError: Container killed due to memory usage",
                "taskArn": arn,
                "memory": "512",
            }
        ],
        "cpu": "256",
        "createdAt": (stopped - timedelta(minutes=5)).isoformat(),
        "desiredStatus": "STOPPED",
        "group": f"service:{key.service}",
        "lastStatus": "STOPPED",
        "launchType": "FARGATE",
        "memory": "512",
        "startedAt": (stopped - timedelta(minutes=4)).isoformat(),
        "startedBy": "ecs-svc/1234567890123456789",
        "stopCode": "EssentialContainerExited",
        "stoppedAt": stopped.isoformat(),
        "stoppedReason": "Essential container in task exited",
        "taskArn": arn,
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{key.service}:{index % 7 + 1}",
        "version": version,
    }


def _messages(count: int) -> list[dict[str, Any]]:
    """Task state changes over the fleet as SQS delivers them: one in twenty twice, one in fifty stale."""
    rng = random.Random(3)
    keys = _keys()
    messages = []
    for index in range(count):
        key = keys[rng.randrange(SERVICES)]
        at = START + timedelta(seconds=index)
        envelope = {
            "version": "0",
            "id": f"{index:08x}-aaaa-4bbb-8ccc-{index:012x}",
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": ACCOUNT,
            "time": at.isoformat(),
            "region": REGION,
            "resources": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{key.cluster}/{index:032x}"],
            "detail": _task(key, index, 3, at),
        }
        body = json.dumps(envelope)
        messages.append({"MessageId": f"m{index}", "ReceiptHandle": f"r{index}", "Body": body})
        if rng.random() < 0.05:
            messages.append({"MessageId": f"m{index}b", "ReceiptHandle": f"r{index}b", "Body": body})
        if rng.random() < 0.02:
            stale = {**envelope, "id": f"stale-{index}", "detail": {**envelope["detail"], "version": 2}}
            messages.append({"MessageId": f"m{index}s", "ReceiptHandle": f"r{index}s", "Body": json.dumps(stale)})
    return messages


def intake_throughput(messages: list[dict[str, Any]]) -> tuple[float, int]:
    """Messages per second through the intake, each key claimed and finished at once."""
    intake = EventIntake()
    acked = 0

    def work() -> int:
        nonlocal acked
        for start in range(0, len(messages), 10):
            batch = intake.receive(messages[start : start + 10])
            acked += len(batch.ack_now)
            for key in batch.keys:
                acked += len(intake.finish(intake.claim(key)))
        return len(messages)

    return _rate(work), acked


def _measured_mb(build: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    tracemalloc.start()
    kept = build()
    gc.collect()
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / 2**20, kept


def evidence_memory() -> tuple[float, int, float]:
    """The memory store at its default bounds, offered 5 stopped tasks for each of 10,000 services;
    and how fast it records (timed apart: tracemalloc slows every allocation down)."""
    keys = _keys()
    offered = [
        (keys[i % SERVICES], _task(keys[i % SERVICES], i, 5, START + timedelta(seconds=i))) for i in range(5 * SERVICES)
    ]

    def fill() -> MemoryEvidence:
        store = MemoryEvidence()
        for key, task in offered:
            store.record(key, task)
        return store

    megabytes, store = _measured_mb(fill)
    assert isinstance(store, MemoryEvidence)
    rate = _rate(lambda: len(offered) if fill() else 0)
    return megabytes, len(store), rate


def intake_memory(messages: list[dict[str, Any]]) -> float:
    """The intake after remembering every event id and task version of `messages`."""

    def fill() -> EventIntake:
        intake = EventIntake()
        for start in range(0, len(messages), 10):
            for key in intake.receive(messages[start : start + 10]).keys:
                intake.finish(intake.claim(key))
        return intake

    megabytes, _ = _measured_mb(fill)
    return megabytes


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def budget_burst() -> tuple[float, int, float, int]:
    """A burst of DescribeServices through the default budget: seconds it takes, and the most calls in
    any one-second window against the share allowed (burst + rate)."""
    clock = _Clock()
    budget = ApiBudget(clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(BURST):
        budget.acquire(ACCOUNT, REGION, "ecs", "DescribeServices")
        times.append(clock.now)
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    share = budget.share("service-read")
    return clock.now, busiest, share.burst + share.rate, 100 + 20


def main() -> int:
    messages = _messages(50_000)
    queue_rate = queue_throughput()
    intake_rate, acked = intake_throughput(messages)
    evidence_mb, kept, record_rate = evidence_memory()
    intake_mb = intake_memory(messages)
    seconds, busiest, allowed, aws = budget_burst()

    print(f"scale: {SERVICES:,} services; wall-clock on one core, memory with tracemalloc")
    print(f"{'measure':<52}{'value':>16}")
    print(f"{'work queue: keys handled per second (3 adds each)':<52}{queue_rate:>16,.0f}")
    print(f"{'event intake: messages per second':<52}{intake_rate:>16,.0f}")
    print(f"{'event intake: messages deleted / received':<52}{f'{acked:,} / {len(messages):,}':>16}")
    print(f"{'event intake: memory after 50,000 events':<52}{f'{intake_mb:.1f} MB':>16}")
    print(f"{'evidence: tasks kept of 50,000 offered':<52}{kept:>16,}")
    print(f"{'evidence: memory at its bounds':<52}{f'{evidence_mb:.1f} MB':>16}")
    print(f"{'evidence: records per second':<52}{record_rate:>16,.0f}")
    print(f"{f'budget: {BURST:,} DescribeServices at once take':<52}{f'{seconds:.1f} s':>16}")
    print(f"{'budget: most calls in one second / share / AWS':<52}{f'{busiest} / {allowed:.0f} / {aws}':>16}")
    ok = evidence_mb <= EVIDENCE_LIMIT_MB and intake_mb <= INTAKE_LIMIT_MB and busiest <= allowed
    ok = ok and acked == len(messages)
    print(
        f"evidence <= {EVIDENCE_LIMIT_MB:.0f} MB, intake <= {INTAKE_LIMIT_MB:.0f} MB, every message deleted, "
        f"budget within its share: {'ok' if ok else 'EXCEEDED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
