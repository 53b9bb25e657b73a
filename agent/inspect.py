"""Live deep diagnosis of one service: the manual troubleshooting workflow, every check, as a report.

What an operator does by hand at 3 a.m., in order: describe the service and its deployments, read the
stopped tasks' stop codes, reasons and exit codes, then follow the cause: does the image tag exist in
ECR, may the execution role pull it and read the task's secrets and logs (IAM's policy simulator), can
the task's subnets reach ECR, S3, CloudWatch Logs and Secrets Manager (routes, NAT and internet
gateways, VPC endpoints, security groups), do the secrets and log groups exist, what did the crashed
container log last, what command does the container run, what memory does it have, what do the load
balancer's health checks allow and say, is there CPU and memory left on the container instances, and
what in the configuration will make the next failure worse. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.arns import parse_image, task_id
from agent.model import Cause, Finding, ServiceView
from agent.preflight import Check, access_checks, render_checks
from agent.reconciler import assess
from agent.state import ServiceState

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime

    from agent.observe import Observer, ReadApi

_PULL = {Cause.IMAGE_NOT_FOUND, Cause.IMAGE_PULL_AUTH, Cause.IMAGE_PULL_NETWORK}
_EXITED = {Cause.APP_CRASH, Cause.ENTRYPOINT_ERROR, Cause.OOM, Cause.UNKNOWN}


__all__ = ["Check", "Inspection", "inspect_service", "render_inspection"]


@dataclass(frozen=True, slots=True)
class Inspection:
    view: ServiceView
    findings: tuple[Finding, ...]
    checks: tuple[Check, ...]


def _containers(view: ServiceView) -> list[Mapping[str, Any]]:
    definition = view.task_definitions.get(view.task_definition) or {}
    return [c for c in definition.get("containerDefinitions") or [] if isinstance(c, dict)]


def _service_check(view: ServiceView) -> Check:
    description = view.description
    lines = [
        f"desired {view.desired_count}, running {view.running_count}, pending {description.get('pendingCount', 0)}",
    ]
    for deployment in view.deployments:
        failed = deployment.get("failedTasks") or 0
        lines.append(
            f"deployment {deployment.get('id')}: {deployment.get('status')} "
            f"{str(deployment.get('taskDefinition', '')).rsplit('/', 1)[-1]} {deployment.get('rolloutState')}"
            + (f", {failed} failed tasks" if failed else "")
        )
    breaker = (description.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker") or {}
    lines.append(
        "circuit breaker "
        + ("on" if breaker.get("enable") else "off")
        + (" with rollback" if breaker.get("rollback") else "")
        + f"; health-check grace period {description.get('healthCheckGracePeriodSeconds') or 0} s"
    )
    return Check("service", "ok" if view.steady else "problem", tuple(lines))


def _tasks_check(view: ServiceView, findings: tuple[Finding, ...]) -> Check:
    tasks = [f for f in findings if f.source_kind.value == "task"]
    if not view.stopped_tasks:
        return Check("stopped tasks", "ok", ("no stopped tasks retained (ECS keeps them about an hour)",))
    counts: dict[str, int] = {}
    for finding in tasks:
        counts[finding.cause.value] = counts.get(finding.cause.value, 0) + 1
    summary = ", ".join(f"{cause} x{count}" for cause, count in sorted(counts.items(), key=lambda kv: -kv[1]))
    newest = max(tasks, key=lambda f: f.occurred_at.timestamp() if f.occurred_at else 0.0, default=None)
    lines = [f"{len(view.stopped_tasks)} stopped tasks: {summary}"]
    if newest is not None:
        lines += [f"newest: {newest.summary}", *newest.evidence[:3]]
    failing = any(f.failure for f in tasks)
    return Check("stopped tasks", "problem" if failing else "ok", tuple(lines))


def _image_check(aws: ReadApi, view: ServiceView) -> Iterator[Check]:
    for container in _containers(view):
        image = str(container.get("image") or "")
        ref = parse_image(image)
        if not ref.is_ecr or not ref.tag:
            yield Check("image", "info", (f"container {container.get('name')}: {image} (not checked: not an ECR tag)",))
            continue
        params = {"repositoryName": ref.repository, "registryId": ref.ecr_account or ""}
        try:
            aws.call("ecr", "DescribeImages", {**params, "imageIds": [{"imageTag": ref.tag}]})
        except Exception as error:  # noqa: BLE001 - each answer is a finding of the check
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            if code == "ImageNotFoundException":
                yield Check(
                    "image", "problem", (f"tag {ref.tag} is not in repository {ref.repository}", *_tags(aws, params))
                )
            elif code == "RepositoryNotFoundException":
                yield Check("image", "problem", (f"repository {ref.repository} does not exist",))
            else:
                yield Check("image", "not checked", (f"ecr:DescribeImages failed: {code}",))
            continue
        yield Check("image", "ok", (f"{ref.repository}:{ref.tag} exists in ECR",))


def _tags(aws: ReadApi, params: Mapping[str, Any]) -> tuple[str, ...]:
    try:
        details = aws.call("ecr", "DescribeImages", {**params, "maxResults": 100}).get("imageDetails") or []
    except Exception:  # noqa: BLE001 - the missing tag is the finding; the others are a courtesy
        return ()
    details.sort(key=lambda d: str(d.get("imagePushedAt") or ""), reverse=True)
    tags = [tag for d in details for tag in d.get("imageTags") or []][:5]
    return (f"newest tags in the repository: {', '.join(tags)}",) if tags else ()


def _logs_check(aws: ReadApi, view: ServiceView, findings: tuple[Finding, ...]) -> Check | None:
    exited = [f for f in findings if f.cause in _EXITED and f.subject.container and f.subject.task_arn]
    if not exited:
        return None
    newest = max(exited, key=lambda f: f.occurred_at.timestamp() if f.occurred_at else 0)
    definition = view.task_definitions.get(newest.subject.task_definition or "") or {}
    container: Mapping[str, Any] = next(
        (c for c in definition.get("containerDefinitions") or [] if c.get("name") == newest.subject.container), {}
    )
    options = (container.get("logConfiguration") or {}).get("options") or {}
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    if not group or not prefix:
        return Check("logs", "not checked", (f"container {newest.subject.container} has no awslogs configuration",))
    stream = f"{prefix}/{newest.subject.container}/{task_id(newest.subject.task_arn or '')}"
    try:
        events = (
            aws.call(
                "logs",
                "GetLogEvents",
                {"logGroupName": group, "logStreamName": stream, "limit": 20, "startFromHead": False},
            ).get("events")
            or []
        )
    except Exception as error:  # noqa: BLE001 - say what could not be read
        return Check("logs", "not checked", (f"{group} {stream}: {type(error).__name__}",))
    lines = [str(e.get("message", "")) for e in events]
    head = f"last {len(lines)} lines of {group} {stream}:" if lines else f"{group} {stream} is empty"
    return Check("logs", "info", (head, *lines))


def _container_check(view: ServiceView, findings: tuple[Finding, ...]) -> Check | None:
    causes = {f.cause for f in findings if f.failure}
    if not causes & {Cause.ENTRYPOINT_ERROR, Cause.OOM, Cause.APP_CRASH}:
        return None
    definition = view.task_definitions.get(view.task_definition) or {}
    lines = [f"task {view.task_definition}: cpu {definition.get('cpu')}, memory {definition.get('memory')}"]
    lines += [
        f"container {c.get('name')}: memory {c.get('memory')} (reservation {c.get('memoryReservation')}), "
        f"entryPoint {c.get('entryPoint')}, command {c.get('command')}, essential {c.get('essential', True)}"
        for c in _containers(view)
    ]
    return Check("task definition", "info", tuple(lines))


def _load_balancer_check(aws: ReadApi, view: ServiceView, findings: tuple[Finding, ...]) -> Iterator[Check]:
    grace = int(view.description.get("healthCheckGracePeriodSeconds") or 0)
    lifetimes = [f.subject.run_seconds for f in findings if f.cause is Cause.HEALTH_CHECK_ELB and f.subject.run_seconds]
    for balancer in view.description.get("loadBalancers") or []:
        arn = balancer.get("targetGroupArn")
        if not arn:
            continue
        try:
            group = aws.call("elbv2", "DescribeTargetGroups", {"TargetGroupArns": [arn]})["TargetGroups"][0]
            health = (
                aws.call("elbv2", "DescribeTargetHealth", {"TargetGroupArn": arn}).get("TargetHealthDescriptions") or []
            )
        except Exception as error:  # noqa: BLE001 - say what could not be read
            yield Check("load balancer", "not checked", (f"{arn}: {type(error).__name__}",))
            continue
        interval, threshold = (
            int(group.get("HealthCheckIntervalSeconds") or 30),
            int(group.get("UnhealthyThresholdCount") or 2),
        )
        allowed = grace + interval * threshold
        states: dict[str, int] = {}
        for target in health:
            state = (target.get("TargetHealth") or {}).get("State", "unknown")
            reason = (target.get("TargetHealth") or {}).get("Description")
            key = f"{state} ({reason})" if reason else state
            states[key] = states.get(key, 0) + 1
        check = f"{group.get('HealthCheckProtocol')} {group.get('HealthCheckPath')} every {interval} s"
        budget = f"a new task has about {allowed} s (grace {grace} s) to answer"
        lines = [
            f"{group.get('TargetGroupName')}: {check}, unhealthy after {threshold}: {budget}",
            "targets: " + (", ".join(f"{count} {state}" for state, count in states.items()) or "none registered"),
        ]
        problem = bool(lifetimes) or any(not k.startswith("healthy") for k in states)
        if lifetimes:
            lines.append(f"tasks stopped by these health checks lived up to {max(lifetimes):.0f} s")
        yield Check("load balancer", "problem" if problem else "ok", tuple(lines))


def _capacity_check(aws: ReadApi, view: ServiceView) -> Check | None:
    if view.launch_type == "FARGATE":
        return None
    try:
        arns = aws.call("ecs", "ListContainerInstances", {"cluster": view.cluster}).get("containerInstanceArns") or []
        if not arns:
            return Check("capacity", "problem", ("no container instances in the cluster",))
        instances = (
            aws.call(
                "ecs", "DescribeContainerInstances", {"cluster": view.cluster, "containerInstances": arns[:100]}
            ).get("containerInstances")
            or []
        )
    except Exception as error:  # noqa: BLE001 - say what could not be read
        return Check("capacity", "not checked", (f"container instances: {type(error).__name__}",))
    definition = view.task_definitions.get(view.task_definition) or {}
    need_cpu = int(definition.get("cpu") or 0) or sum(int(c.get("cpu") or 0) for c in _containers(view))
    need_memory = int(definition.get("memory") or 0) or sum(int(c.get("memory") or 0) for c in _containers(view))
    fits = 0
    lines = [f"a task needs {need_cpu} CPU units and {need_memory} MiB"]
    for instance in instances:
        remaining = {r["name"]: r.get("integerValue", 0) for r in instance.get("remainingResources") or []}
        cpu, memory = int(remaining.get("CPU", 0)), int(remaining.get("MEMORY", 0))
        fits += int(cpu >= need_cpu and memory >= need_memory)
        lines.append(
            f"{instance.get('ec2InstanceId')}: {cpu} CPU units and {memory} MiB free, {instance.get('status')}"
        )
    return Check(
        "capacity",
        "ok" if fits else "problem",
        (*lines, f"{fits} of {len(instances)} instances can take one more task"),
    )


def inspect_service(
    aws: ReadApi, observer: Observer, cluster: str, service: str, *, now: datetime, region: str | None
) -> Inspection | None:
    """Every check of the troubleshooting workflow for one service; None if the service does not exist."""
    view = observer.observe_service(cluster, service, now)
    if view is None:
        return None
    assessment = assess(view, state=ServiceState(), region=region)
    findings = assessment.findings
    causes = {f.cause for f in findings if f.failure}
    checks: list[Check] = [_service_check(view), _tasks_check(view, findings)]
    if causes & _PULL or not view.steady:
        checks += list(_image_check(aws, view))
    definition = view.task_definitions.get(view.task_definition)
    if definition is not None and region:
        checks += access_checks(aws, definition, region=region, service=view.description)
    checks += [c for c in (_logs_check(aws, view, findings), _container_check(view, findings)) if c is not None]
    checks += list(_load_balancer_check(aws, view, findings))
    if causes & {Cause.PLACEMENT_CPU, Cause.PLACEMENT_MEMORY, Cause.PLACEMENT_PORTS, Cause.CAPACITY_QUOTA}:
        checks += [c for c in (_capacity_check(aws, view),) if c is not None]
    risks = assessment.risks
    checks.append(
        Check("prevention", "problem" if risks else "ok", tuple(r.summary for r in risks) or ("nothing to prevent",))
    )
    return Inspection(view, findings, tuple(checks))


def render_inspection(inspection: Inspection) -> str:
    view = inspection.view
    lines = [f"{view.cluster} / {view.name}: {len(inspection.checks)} checks", *render_checks(inspection.checks)]
    return "\n".join(lines) + "\n"
