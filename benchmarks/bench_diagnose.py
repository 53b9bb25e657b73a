"""Diagnosis throughput: findings per second over 100,000 synthetic stopped tasks, on one core.

Two fleets: a realistic one (1,000 services, so the same messages recur, as they do in a real
account) and a worst case where every message is distinct (no memoisation helps).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

from agent.diagnose import diagnose_document
from agent.diagnose.messages import read_message

TASKS = 100_000
ROUNDS = 5
TARGET_PER_SECOND = 50_000
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def _shapes(service: str, salt: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    image = f"{ECR}/{service}:{salt}"
    return [
        (
            "EssentialContainerExited",
            "Essential container in task exited",
            [
                {
                    "name": "app",
                    "exitCode": 137,
                    "reason": "OutOfMemoryError: Container killed due to memory usage",
                    "image": image,
                },
                {"name": "datadog-agent", "exitCode": 143},
            ],
        ),
        (
            "EssentialContainerExited",
            "Essential container in task exited",
            [{"name": "app", "exitCode": 1, "image": image}],
        ),
        (
            "EssentialContainerExited",
            "Essential container in task exited",
            [{"name": "app", "exitCode": 255, "image": image}],
        ),
        (
            "TaskFailedToStart",
            f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {image}: {image}: not found",
            [{"name": "app", "image": image}],
        ),
        (
            "TaskFailedToStart",
            (
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
                "unable to retrieve ecr registry auth: service call has been retried 3 time(s): RequestError: send request "
                f'failed caused by: Post "https://api.ecr.us-east-1.amazonaws.com/": dial tcp 10.0.{salt}: i/o timeout'
            ),
            [{"name": "app", "image": image}],
        ),
        (
            "ServiceSchedulerInitiated",
            f"Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{service}/{salt})",
            [{"name": "app", "exitCode": 137, "image": image}],
        ),
        (
            "ServiceSchedulerInitiated",
            f"Scaling activity initiated by (deployment ecs-svc/{salt})",
            [{"name": "app", "exitCode": 0, "image": image}],
        ),
        ("UserInitiated", "Task stopped by user", [{"name": "app", "exitCode": 137, "image": image}]),
    ]


def fleet(*, distinct: bool, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tasks = []
    for index in range(TASKS):
        service = f"svc-{rng.randrange(1000):04d}"
        salt = f"{index}" if distinct else "v42"
        stop_code, reason, containers = rng.choice(_shapes(service, salt))
        tasks.append(
            {
                "taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/prod/{index:032x}",
                "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
                "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/{service}:42",
                "group": f"service:{service}",
                "lastStatus": "STOPPED",
                "stopCode": stop_code,
                "stoppedReason": reason,
                "startedAt": "2026-04-19T03:10:00+00:00",
                "stoppedAt": "2026-04-19T03:12:00+00:00",
                "containers": containers,
            }
        )
    return tasks


def measure(tasks: list[dict[str, Any]]) -> float:
    rates = []
    for _ in range(ROUNDS):
        read_message.cache_clear()
        started = time.process_time()
        findings = diagnose_document(tasks=tasks)
        elapsed = time.process_time() - started
        assert len(findings) == len(tasks)
        rates.append(len(findings) / elapsed)
    return statistics.median(rates)


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"diagnosis: {TASKS:,} stopped tasks, median of {ROUNDS} rounds, one core (CPU time)")
    print(f"{'fleet':<34}{'findings/s':>12}{'target':>10}  result")
    failed = False
    for name, distinct in (("realistic (messages recur)", False), ("worst case (all messages distinct)", True)):
        rate = measure(fleet(distinct=distinct))
        ok = rate >= TARGET_PER_SECOND
        failed |= not ok and not distinct
        print(f"{name:<34}{rate:>12,.0f}{TARGET_PER_SECOND:>10,}  {'ok' if ok else 'BELOW TARGET'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
