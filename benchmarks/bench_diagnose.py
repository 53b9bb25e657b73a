"""Diagnosis throughput: findings per second over 100,000 synthetic stopped tasks, on one core.

Three fleets: a realistic one (1,000 services, so the same messages recur, as they do in a real
account); one where every message carries its own names and numbers (so the memo of read messages
never hits); and the worst case, where the memo is bypassed altogether and every message of every
task is read from scratch. The shapes cover every family of wording the engine tells apart: pulls
(missing tag, denied, no network path, rate limit, wrong platform), secrets, logging, volumes,
placement, health checks, crashes, OOM kills, dependencies, scale-ins and user stops.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent.diagnose import diagnose_document, events, failures, tasks
from agent.diagnose.messages import read_message

if TYPE_CHECKING:
    from collections.abc import Iterator

TASKS = 100_000
ROUNDS = 5
TARGET_REALISTIC = 50_000
TARGET_NO_REPEAT = 20_000
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
OOM = "OutOfMemoryError: Container killed due to memory usage"


def _shapes(service: str, salt: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    image = f"{ECR}/{service}:{salt}"
    exited = f"Essential container in task exited (task {salt})"
    return [
        (
            "EssentialContainerExited",
            exited,
            [
                {"name": "app", "exitCode": 137, "reason": f"{OOM} ({salt})", "image": image},
                {"name": "datadog-agent", "exitCode": 143},
            ],
        ),
        ("EssentialContainerExited", exited, [{"name": "app", "exitCode": 1, "image": image}]),
        ("EssentialContainerExited", exited, [{"name": "app", "exitCode": 255, "image": image}]),
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
            "TaskFailedToStart",
            (
                "ResourceInitializationError: unable to pull secrets or registry auth: The task cannot pull registry auth "
                "from Amazon ECR: There is a connection issue between the task and Amazon ECR. Check your task network "
                f"configuration. operation error ECR: GetAuthorizationToken, exceeded maximum number of attempts, 3, "
                f'https response error StatusCode: 0, RequestID: , request send failed, Post "https://api.ecr.us-east-1.'
                f'amazonaws.com/": dial tcp 10.1.{salt}:443: i/o timeout'
            ),
            [{"name": "app", "image": image}],
        ),
        (
            "TaskFailedToStart",
            (
                f"CannotPullContainerError: The task can\u2019t pull the image. Check that the role has the permissions to pull "
                f"images from the registry. Error response from daemon: pull access denied for {ECR}/{service}, repository "
                f"does not exist or may require 'docker login': denied: User: arn:aws:sts::123456789012:assumed-role/"
                f"{service}-exec/{salt} is not authorized to perform: ecr:BatchGetImage on resource: "
                f"arn:aws:ecr:us-east-1:123456789012:repository/{service}"
            ),
            [{"name": "app", "image": image}],
        ),
        (
            "TaskFailedToStart",
            (
                f"CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReadSeeker: failed open: "
                f"unexpected status code https://registry-1.docker.io/v2/library/{service}/manifests/sha256:{salt}: 429 Too "
                "Many Requests - Server message: toomanyrequests: You have reached your pull rate limit."
            ),
            [{"name": "app", "image": f"{service}:{salt}"}],
        ),
        (
            "TaskFailedToStart",
            (
                f"CannotPullContainerError: pull image manifest has been retried 7 time(s): image Manifest does not contain "
                f"descriptor matching platform 'linux/amd64' ({salt})"
            ),
            [{"name": "app", "image": image}],
        ),
        (
            "TaskFailedToStart",
            (
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
                f"unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret "
                f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{service}-{salt} from secrets manager: "
                "ResourceNotFoundException: Secrets Manager can't find the specified secret."
            ),
            [{"name": "app", "image": image}],
        ),
        (
            "TaskFailedToStart",
            (
                "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
                f"failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not "
                f"exist. : exit status 1 (/ecs/{service}-{salt})"
            ),
            [{"name": "app", "image": image}],
        ),
        (
            "TaskFailedToStart",
            "Task failed to start",
            [
                {
                    "name": "app",
                    "image": image,
                    "reason": f'ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: Failed to resolve "fs-{salt}.efs.us-east-1.amazonaws.com"',
                }
            ],
        ),
        (
            "EssentialContainerExited",
            exited,
            [
                {
                    "name": "app",
                    "reason": "dependency graph: failed to resolve container ordering dependency [migrate] for target "
                    f"[app-{salt}] as dependency did not exit successfully.",
                },
                {"name": "migrate", "exitCode": 1, "image": image},
            ],
        ),
        (
            "ServiceSchedulerInitiated",
            f"Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{service}/{salt})",
            [{"name": "app", "exitCode": 137, "image": image}],
        ),
        (
            "ServiceSchedulerInitiated",
            f"Task failed container health checks ({salt})",
            [{"name": "app", "exitCode": 137, "image": image}],
        ),
        (
            "ServiceSchedulerInitiated",
            f"Scaling activity initiated by (deployment ecs-svc/{salt})",
            [{"name": "app", "exitCode": 0, "image": image}],
        ),
        (
            "TaskFailedToStart",
            f"Timeout waiting for network interface provisioning to complete. ({salt})",
            [{"name": "app", "image": image}],
        ),
        ("UserInitiated", f"Task stopped by user ({salt})", [{"name": "app", "exitCode": 137, "image": image}]),
    ]


def fleet(*, distinct: bool, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    fleet_tasks = []
    for index in range(TASKS):
        service = f"svc-{rng.randrange(1000):04d}"
        salt = f"{index}" if distinct else "v42"
        stop_code, reason, containers = rng.choice(_shapes(service, salt))
        fleet_tasks.append(
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
    return fleet_tasks


@contextmanager
def without_memo() -> Iterator[None]:
    """Every message read from scratch, however often it recurs: the engine's true cost per message."""
    uncached = read_message.__wrapped__
    modules = (tasks, events, failures)
    for module in modules:
        module.read_message = uncached  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.read_message = read_message  # type: ignore[attr-defined]


def measure(fleet_tasks: list[dict[str, Any]]) -> float:
    rates = []
    for _ in range(ROUNDS):
        read_message.cache_clear()
        started = time.process_time()
        findings = diagnose_document(tasks=fleet_tasks)
        elapsed = time.process_time() - started
        assert len(findings) == len(fleet_tasks)
        rates.append(len(findings) / elapsed)
    return statistics.median(rates)


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"diagnosis: {TASKS:,} stopped tasks, median of {ROUNDS} rounds, one core (CPU time)")
    print(f"{'fleet':<40}{'findings/s':>12}{'target':>10}  result")
    distinct = fleet(distinct=True)
    with without_memo():
        no_repeat = measure(distinct)
    results = (
        ("realistic (messages recur)", measure(fleet(distinct=False)), TARGET_REALISTIC),
        ("every message distinct (memo misses)", measure(distinct), TARGET_NO_REPEAT),
        ("no message repeats (memo bypassed)", no_repeat, TARGET_NO_REPEAT),
    )
    failed = False
    for name, rate, target in results:
        ok = rate >= target
        failed |= not ok
        print(f"{name:<40}{rate:>12,.0f}{target:>10,}  {'ok' if ok else 'BELOW TARGET'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
