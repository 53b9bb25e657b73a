"""DIAGNOSE: ECS objects exactly as the API returns them -> findings. Pure: no I/O, no clock.

One finding per stopped task, per service event that reports a problem, per failed or failing
deployment, and per RunTask failure. Tasks are read first, because events and deployments often only
say *that* tasks fail; the tasks say *why*.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.arns import as_datetime, family_revision, region_of, resource_name, service_of_group
from agent.diagnose.deployments import circuit_breaker, diagnose_deployments
from agent.diagnose.events import diagnose_event, is_steady_state_event
from agent.diagnose.failures import diagnose_failure
from agent.diagnose.fields import text
from agent.diagnose.tasks import diagnose_task, is_stopped
from agent.model import Cause, Finding, Subject

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "circuit_breaker",
    "diagnose_document",
    "diagnose_service",
    "diagnose_task",
    "dominant_cause",
    "is_stopped",
    "last_good_task_definition",
]


_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def dominant_cause(findings: Iterable[Finding]) -> Cause | None:
    """The most common failure cause among `findings` (first seen wins a tie), or None."""
    counts = Counter(f.cause for f in findings if f.failure and f.cause is not Cause.UNKNOWN)
    return counts.most_common(1)[0][0] if counts else None


def diagnose_service(
    service: Mapping[str, Any],
    stopped_tasks: Sequence[Mapping[str, Any]] = (),
    *,
    essential: Mapping[str, Mapping[str, bool]] | None = None,
) -> list[Finding]:
    """Findings for one service (as DescribeServices returns it) and its stopped tasks.

    `essential` maps a task definition (`family:revision`) to its containers' `essential` flags.
    """
    cluster_arn = text(service.get("clusterArn"))
    service_arn = text(service.get("serviceArn"))
    base = Subject(
        cluster=resource_name(cluster_arn) or "<cluster>",
        service=text(service.get("serviceName")) or resource_name(service_arn) or "<service>",
        region=region_of(service_arn) or region_of(cluster_arn),
        task_definition=_primary_task_definition(service),
        last_good_task_definition=last_good_task_definition(service),
    )
    task_findings = []
    for task in stopped_tasks:
        flags = (essential or {}).get(family_revision(text(task.get("taskDefinitionArn"))) or "")
        finding = diagnose_task(task, cluster=base.cluster, essential=flags, last_good=base.last_good_task_definition)
        if finding is not None:
            task_findings.append(finding)

    by_deployment: dict[str, list[Finding]] = {}
    for finding in task_findings:
        if finding.subject.started_by:
            by_deployment.setdefault(finding.subject.started_by, []).append(finding)
    deployment_causes = {
        deployment: cause
        for deployment, findings in by_deployment.items()
        if (cause := dominant_cause(findings)) is not None
    }
    task_cause = dominant_cause(task_findings)
    findings = diagnose_deployments(service, base, task_causes=deployment_causes, fallback_cause=task_cause)
    events = service.get("events")
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict) and is_steady_state_event(event):
            break  # events are newest first: what came before the service reached steady state is history
        if isinstance(event, dict) and (found := diagnose_event(event, base, task_cause=task_cause)) is not None:
            findings.append(found)
    return findings + task_findings


def last_good_task_definition(service: Mapping[str, Any]) -> str | None:
    """`family:revision` of the newest deployment that reached COMPLETED, as DescribeServices shows it."""
    deployments = service.get("deployments")
    completed = [
        d
        for d in (deployments if isinstance(deployments, list) else [])
        if isinstance(d, dict) and d.get("rolloutState") == "COMPLETED"
    ]
    completed.sort(key=lambda d: as_datetime(d.get("createdAt")) or _EPOCH)
    return family_revision(text(completed[-1].get("taskDefinition"))) if completed else None


def _primary_task_definition(service: Mapping[str, Any]) -> str | None:
    deployments = service.get("deployments")
    for deployment in deployments if isinstance(deployments, list) else []:
        if isinstance(deployment, dict) and deployment.get("status") == "PRIMARY":
            return family_revision(text(deployment.get("taskDefinition")))
    return family_revision(text(service.get("taskDefinition")))


def diagnose_document(
    *,
    tasks: Sequence[Mapping[str, Any]] = (),
    services: Sequence[Mapping[str, Any]] = (),
    failures: Sequence[Mapping[str, Any]] = (),
) -> list[Finding]:
    """Findings for the output of `aws ecs describe-tasks` / `describe-services`, in any combination.

    Tasks are matched to services by cluster and by their `group` (`service:<name>`).
    """
    tasks_by_service: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    loose_tasks: list[Mapping[str, Any]] = []
    known = {(resource_name(text(s.get("clusterArn"))), text(s.get("serviceName"))) for s in services}
    for task in tasks:
        key = (resource_name(text(task.get("clusterArn"))), service_of_group(text(task.get("group"))) or "")
        if key in known:
            tasks_by_service.setdefault(key, []).append(task)
        else:
            loose_tasks.append(task)

    findings: list[Finding] = []
    for service in services:
        key = (resource_name(text(service.get("clusterArn"))), text(service.get("serviceName")))
        findings += diagnose_service(service, tasks_by_service.get(key, []))
    for task in loose_tasks:
        finding = diagnose_task(task)
        if finding is not None:
            findings.append(finding)
    for failure in failures:
        finding = diagnose_failure(failure)
        if finding is not None:
            findings.append(finding)
    return findings
