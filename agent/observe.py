"""OBSERVE: read-only calls -> one snapshot of the selected services. Level-triggered and cheap.

A full pass re-reads current state: ListServices, then DescribeServices 10 at a time with tags. A
healthy service costs about a tenth of a call. Stopped tasks (ListTasks STOPPED, DescribeTasks 100 at
a time) are read only for services that show trouble: a new problem event, failed tasks in a
deployment, fewer running than desired, or a rollout that has not finished. Task definitions never
change once registered, so each is read once and remembered. A failing cluster or service is
recorded as an error of this pass and never stops the others.

What sizes a fix is read for troubled services only: the target groups' health-check settings of a
load-balanced service; the cluster's container instances (registered and remaining CPU and memory)
for one on EC2, once per cluster and pass; and, for a service whose tasks were OOM-killed in a
cluster with Container Insights on, the peak MemoryUtilized of its tasks (one GetMetricData). These
reads are best effort: one that fails is reported as this pass's error, and the action sizes its fix
without that evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agent.arns import ServiceKey, as_datetime, family_revision, resource_name, service_key
from agent.diagnose.events import reports_problem
from agent.diagnose.tasks import diagnose_task
from agent.model import Cause, ServiceView
from agent.state import PAUSED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from datetime import datetime

T = TypeVar("T")

DESCRIBE_SERVICES_BATCH = 10  # the API's limit
DESCRIBE_TASKS_BATCH = 100  # the API's limit
STOPPED_TASKS_PER_SERVICE = 100  # newest evidence is enough; ECS keeps stopped tasks about an hour
STUCK_ROLLOUT = timedelta(minutes=15)
DESCRIBE_TARGET_GROUPS_BATCH = 20  # the API's limit for TargetGroupArns
DESCRIBE_CONTAINER_INSTANCES_BATCH = 100  # the API's limit
INSIGHTS_NAMESPACE = "ECS/ContainerInsights"
MEMORY_PEAK_WINDOW = timedelta(hours=3)  # long enough to hold the last good revision's busiest hour


class ReadApi(Protocol):
    """The reads observe makes (implemented by `agent.aws.AwsGateway`)."""

    def call(self, api: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def paginate(self, api: str, operation: str, params: Mapping[str, Any], key: str) -> Iterator[Any]: ...


class EvidenceReader(Protocol):
    """What observe reads of the evidence store (`agent.evidence`)."""

    def recent(self, service_key: ServiceKey, since: datetime) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class ObserveError:
    """Something this pass could not read; the rest of the pass went on.

    `configuration` marks what no retry will fix: a cluster that does not exist, a region without
    clusters, credentials that may not list anything.
    """

    cluster: str
    service: str | None
    operation: str
    message: str
    configuration: bool = False

    def log(self, log: Any) -> None:  # noqa: ANN401 - a structlog logger
        """One `observe_failed` line: an error when no retry will fix it, else a warning."""
        (log.error if self.configuration else log.warning)(
            "observe_failed",
            cluster=self.cluster,
            service=self.service,
            operation=self.operation,
            error=self.message,
            configuration=self.configuration,
        )


# Answers that mean "these credentials, this region or this name are wrong", not "try again".
_CONFIGURATION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "ClusterNotFoundException",
    }
)
_CONFIGURATION_ERRORS = frozenset({"NoCredentialsError", "PartialCredentialsError", "NoRegionError", "ProfileNotFound"})


def is_configuration_error(error: BaseException) -> bool:
    """Whether an AWS error says the agent is pointed at the wrong place or with the wrong rights."""
    code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code")
    return code in _CONFIGURATION_CODES or type(error).__name__ in _CONFIGURATION_ERRORS


@dataclass(frozen=True, slots=True)
class Snapshot:
    services: tuple[ServiceView, ...]
    errors: tuple[ObserveError, ...]
    clusters: tuple[str, ...]
    # cluster -> services listed but not read this pass: they count as possibly failing (fail closed)
    unread: Mapping[str, int] = field(default_factory=dict)
    # (cluster, service) asked for by name that no longer exist (deleted, or INACTIVE)
    gone: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Listing:
    """What a resync must look at: every selected service's ARN, by cluster; nothing is described."""

    services: Mapping[str, tuple[str, ...]]
    errors: tuple[ObserveError, ...]
    clusters: tuple[str, ...]
    unread: Mapping[str, int] = field(default_factory=dict)


def _tags(items: object) -> dict[str, str]:
    """ECS returns tags as [{key, value}]; Auto Scaling as [{Key, Value}]."""
    tags: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            key, value = item.get("key", item.get("Key")), item.get("value", item.get("Value", ""))
            if isinstance(key, str):
                tags[key] = str(value)
    return tags


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def needs_stopped_tasks(service: Mapping[str, Any], seen_until: datetime | None, now: datetime) -> bool:
    """Whether a service shows trouble worth reading its stopped tasks for."""
    if int(service.get("runningCount") or 0) < int(service.get("desiredCount") or 0):
        return True
    deployments = [d for d in service.get("deployments") or [] if isinstance(d, dict)]
    if len(deployments) > 1:
        return True
    for deployment in deployments:
        if deployment.get("rolloutState") == "FAILED" or int(deployment.get("failedTasks") or 0) > 0:
            return True
        created = as_datetime(deployment.get("createdAt"))
        if deployment.get("rolloutState") == "IN_PROGRESS" and created and now - created > STUCK_ROLLOUT:
            return True
    for event in service.get("events") or []:
        created = as_datetime(event.get("createdAt")) if isinstance(event, dict) else None
        if seen_until is not None and created is not None and created <= seen_until:
            break  # events are newest first: the rest were read in an earlier pass
        if isinstance(event, dict) and reports_problem(str(event.get("message") or "")):
            return True
    return False


@dataclass
class Observer:
    """Reads the fleet. Keeps only what never changes (task definitions), what was already seen, and the
    clusters' descriptions for `cluster_ttl` seconds (targeted reads)."""

    aws: ReadApi
    clusters: tuple[str, ...] = ()
    # Prevention checks (a mutable image tag) need task definitions of services that show no trouble; a
    # few new ones per pass cover a fleet of thousands within hours, at under 3% of the pass's calls.
    task_definition_reads_per_pass: int = 5
    evidence: EvidenceReader | None = None
    evidence_window: timedelta = timedelta(hours=1)
    cluster_ttl: float = 30.0  # seconds a cluster's description serves targeted reads (its pause tag, settings)
    wanted: Callable[[str, str], bool] | None = None  # (service ARN, cluster): this replica reads it; None: all
    _task_definitions: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    _events_seen_until: dict[str, datetime] = field(default_factory=dict)
    _sizing_errors: list[ObserveError] = field(default_factory=list)  # this pass's failed best-effort reads
    _described: dict[str, tuple[datetime, Mapping[str, Any] | None]] = field(default_factory=dict)
    _capacity: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    # Task definitions targeted reads may read for services that show no trouble, refilled over time at
    # the full pass's rate (`task_definition_reads_per_pass` per `cluster_ttl`).
    _definition_allowance: tuple[float, datetime | None] = (0.0, None)

    def observe(self, now: datetime) -> Snapshot:
        operation = "DescribeClusters" if self.clusters else "ListClusters"
        try:
            clusters, errors = self._selected_clusters(now)
        except Exception as error:  # noqa: BLE001 - reported as this pass's error; the loop goes on
            failure = ObserveError("*", None, operation, _message(error), configuration=is_configuration_error(error))
            return Snapshot((), (failure,), ())
        views: list[ServiceView] = []
        unread: dict[str, int] = {}
        budget = [self.task_definition_reads_per_pass]
        for cluster in clusters:
            name = str(cluster.get("clusterName") or resource_name(str(cluster.get("clusterArn", ""))))
            try:
                views += self._observe_cluster(cluster, now, errors, budget, unread)
            except Exception as error:  # noqa: BLE001 - one cluster's failure never stops the others
                denied = is_configuration_error(error)
                errors.append(ObserveError(name, None, "ListServices", _message(error), configuration=denied))
                unread[name] = max(unread.get(name, 0), int(cluster.get("activeServicesCount") or 0))
        names = tuple(str(c.get("clusterName")) for c in clusters)
        errors += self._sizing_errors
        self._sizing_errors = []
        return Snapshot(tuple(views), tuple(errors), names, {k: v for k, v in unread.items() if v})

    def _selected_clusters(self, now: datetime) -> tuple[list[Mapping[str, Any]], list[ObserveError]]:
        """The ACTIVE clusters selected (every cluster when none is named), remembered for targeted
        reads, and what is wrong with the selection (no cluster at all, a named one missing)."""
        cluster_arns = list(self.clusters) or list(self.aws.paginate("ecs", "ListClusters", {}, "clusterArns"))
        missing: list[str] = []
        # Only named clusters can be missing; ListClusters may still list one being deleted.
        clusters = self._describe_clusters(cluster_arns, missing if self.clusters else None)
        for cluster in clusters:
            self._described[str(cluster.get("clusterName"))] = (now, cluster)
        errors = []
        if not cluster_arns:
            errors.append(
                ObserveError("*", None, "ListClusters", "no ECS cluster in this region and account", configuration=True)
            )
        errors += [
            ObserveError(name, None, "DescribeClusters", f"no active cluster {name} here", configuration=True)
            for name in missing
        ]
        return clusters, errors

    def refresh_clusters(self, now: datetime) -> tuple[ObserveError, ...]:
        """Read the selected clusters again (their pause tags and settings); what is wrong with them."""
        _, errors = self._selected_clusters(now)
        return tuple(errors)

    def list_services(self, now: datetime) -> Listing:
        """Every selected service's ARN by cluster (ListClusters or DescribeClusters, then ListServices):
        what a resync queues. Nothing is described."""
        operation = "DescribeClusters" if self.clusters else "ListClusters"
        try:
            clusters, errors = self._selected_clusters(now)
        except Exception as error:  # noqa: BLE001 - reported as this resync's error
            failure = ObserveError("*", None, operation, _message(error), configuration=is_configuration_error(error))
            return Listing({}, (failure,), ())
        services: dict[str, tuple[str, ...]] = {}
        unread: dict[str, int] = {}
        for cluster in clusters:
            name = str(cluster.get("clusterName"))
            try:
                params = {"cluster": name, "maxResults": 100}
                arns = self.aws.paginate("ecs", "ListServices", params, "serviceArns")
                services[name] = tuple(a for a in arns if self.wanted is None or self.wanted(a, name))
            except Exception as error:  # noqa: BLE001 - one cluster's failure never stops the others
                denied = is_configuration_error(error)
                errors.append(ObserveError(name, None, "ListServices", _message(error), configuration=denied))
                unread[name] = int(cluster.get("activeServicesCount") or 0)
        names = tuple(str(c.get("clusterName")) for c in clusters)
        return Listing(services, tuple(errors), names, {k: v for k, v in unread.items() if v})

    def observe_services(
        self,
        cluster: str,
        services: Sequence[str],
        now: datetime,
        *,
        stopped_from_events: frozenset[str] = frozenset(),
    ) -> Snapshot:
        """Up to 10 services of one cluster (names or ARNs), with one DescribeServices.

        Services named in `stopped_from_events` are read as troubled, and their stopped tasks are the
        evidence store's (the events brought them): no ListTasks or DescribeTasks for them.
        """
        if len(services) > DESCRIBE_SERVICES_BATCH:
            raise ValueError(f"at most {DESCRIBE_SERVICES_BATCH} services per read, got {len(services)}")
        errors: list[ObserveError] = []
        try:
            described = self._cluster(cluster, now)
        except Exception as error:  # noqa: BLE001 - the batch is unread; its keys are tried again
            denied = is_configuration_error(error)
            failure = ObserveError(cluster, None, "DescribeClusters", _message(error), configuration=denied)
            return Snapshot((), (failure,), (cluster,), {cluster: len(services)})
        if described is None:
            message = f"no active cluster {cluster} here"
            failure = ObserveError(cluster, None, "DescribeClusters", message, configuration=True)
            return Snapshot((), (failure,), (cluster,), gone=tuple((cluster, resource_name(s)) for s in services))
        try:
            response = self.aws.call(
                "ecs", "DescribeServices", {"cluster": cluster, "services": list(services), "include": ["TAGS"]}
            )
        except Exception as error:  # noqa: BLE001 - the batch is unread; its keys are tried again
            denied = is_configuration_error(error)
            failure = ObserveError(cluster, None, "DescribeServices", _message(error), configuration=denied)
            return Snapshot((), (failure,), (cluster,), {cluster: len(services)})
        paused = _tags(described.get("tags")).get(PAUSED) or None
        budget = [self._definitions_allowed(now)]
        spent = budget[0]
        views: list[ServiceView] = []
        found: set[str] = set()
        unread = 0
        capacity = self._capacity_of(cluster, now)
        for service in response.get("services") or []:
            if service.get("status") != "ACTIVE":
                continue
            name = str(service.get("serviceName"))
            found.add(name)
            try:
                view, fresh = self._observe_service(
                    described,
                    service,
                    paused=paused,
                    now=now,
                    budget=budget,
                    capacity=capacity,
                    force=name in stopped_from_events,
                    list_stopped=name not in stopped_from_events,
                )
            except Exception as error:  # noqa: BLE001 - one service's failure never stops the others
                errors.append(ObserveError(cluster, name, "DescribeTasks", _message(error)))
                unread += 1
                continue
            if fresh is not None and capacity is None:
                capacity = fresh
                self._capacity[cluster] = (now, fresh)
            views.append(view)
        self._spend_definitions(spent - budget[0])
        gone = tuple((cluster, resource_name(s)) for s in services if resource_name(s) not in found)
        errors += self._sizing_errors
        self._sizing_errors = []
        return Snapshot(tuple(views), tuple(errors), (cluster,), {cluster: unread} if unread else {}, gone)

    def _cluster(self, name: str, now: datetime) -> Mapping[str, Any] | None:
        """The cluster's description, read again once it is older than `cluster_ttl` (None: not active)."""
        cached = self._described.get(name)
        if cached is not None and (now - cached[0]).total_seconds() < self.cluster_ttl:
            return cached[1]
        found = self._describe_clusters([name])
        described = found[0] if found else None
        self._described[name] = (now, described)
        return described

    def _capacity_of(self, cluster: str, now: datetime) -> dict[str, Any] | None:
        cached = self._capacity.get(cluster)
        if cached is not None and (now - cached[0]).total_seconds() < self.cluster_ttl:
            return cached[1]
        return None

    def _definitions_allowed(self, now: datetime) -> int:
        allowance, since = self._definition_allowance
        if since is not None:
            refill = self.task_definition_reads_per_pass * (now - since).total_seconds() / self.cluster_ttl
            allowance = min(float(self.task_definition_reads_per_pass), allowance + max(0.0, refill))
        self._definition_allowance = (allowance, now)
        return int(allowance)

    def _spend_definitions(self, count: int) -> None:
        allowance, since = self._definition_allowance
        self._definition_allowance = (max(0.0, allowance - count), since)

    def observe_service(self, cluster: str, service: str, now: datetime) -> ServiceView | None:
        """One service read in full whatever it shows (for live diagnosis); None if it does not exist."""
        clusters = self._describe_clusters([cluster])
        if not clusters:
            return None
        response = self.aws.call(
            "ecs", "DescribeServices", {"cluster": cluster, "services": [service], "include": ["TAGS"]}
        )
        found = [s for s in response.get("services") or [] if s.get("status") == "ACTIVE"]
        if not found:
            return None
        paused = _tags(clusters[0].get("tags")).get(PAUSED) or None
        view, _ = self._observe_service(
            clusters[0], found[0], paused=paused, now=now, budget=[0], capacity=None, force=True
        )
        return view

    def _describe_clusters(self, arns: Sequence[str], missing: list[str] | None = None) -> list[Mapping[str, Any]]:
        """The ACTIVE clusters among `arns`; the others (unknown, INACTIVE) are added to `missing`."""
        described: list[Mapping[str, Any]] = []
        for chunk in _chunks(arns, 100):
            response = self.aws.call(
                "ecs", "DescribeClusters", {"clusters": list(chunk), "include": ["TAGS", "SETTINGS"]}
            )
            described += [c for c in response.get("clusters") or [] if c.get("status", "ACTIVE") == "ACTIVE"]
        if missing is not None:
            found = {str(c.get(key)) for c in described for key in ("clusterName", "clusterArn")}
            missing += [arn for arn in arns if arn not in found]
        return described

    def _observe_cluster(
        self,
        cluster: Mapping[str, Any],
        now: datetime,
        errors: list[ObserveError],
        budget: list[int],
        unread: dict[str, int],
    ) -> list[ServiceView]:
        name = str(cluster.get("clusterName"))
        paused = _tags(cluster.get("tags")).get(PAUSED) or None
        arns = list(self.aws.paginate("ecs", "ListServices", {"cluster": name, "maxResults": 100}, "serviceArns"))
        if self.wanted is not None:
            arns = [arn for arn in arns if self.wanted(arn, name)]
        capacity: dict[str, Any] | None = None
        views = []
        for chunk in _chunks(arns, DESCRIBE_SERVICES_BATCH):
            try:
                response = self.aws.call(
                    "ecs", "DescribeServices", {"cluster": name, "services": list(chunk), "include": ["TAGS"]}
                )
            except Exception as error:  # noqa: BLE001 - the other batches still count
                errors.append(ObserveError(name, None, "DescribeServices", _message(error)))
                unread[name] = unread.get(name, 0) + len(chunk)
                continue
            for service in response.get("services") or []:
                if service.get("status") != "ACTIVE":
                    continue
                try:
                    view, fresh = self._observe_service(
                        cluster, service, paused=paused, now=now, budget=budget, capacity=capacity
                    )
                except Exception as error:  # noqa: BLE001 - one service's failure never stops the others
                    errors.append(ObserveError(name, str(service.get("serviceName")), "DescribeTasks", _message(error)))
                    unread[name] = unread.get(name, 0) + 1
                    continue
                if fresh is not None:
                    capacity = fresh
                    self._capacity[name] = (now, fresh)
                views.append(view)
        return views

    def _observe_service(
        self,
        cluster: Mapping[str, Any],
        service: dict[str, Any],
        *,
        paused: str | None,
        now: datetime,
        budget: list[int],
        capacity: dict[str, Any] | None,
        force: bool = False,
        list_stopped: bool = True,
    ) -> tuple[ServiceView, dict[str, Any] | None]:
        """One described service with what its state calls for; the cluster's capacity when read now."""
        cluster_name = str(cluster.get("clusterName"))
        arn = str(service.get("serviceArn"))
        troubled = force or needs_stopped_tasks(service, self._events_seen_until.get(arn), now)
        events = [e for e in service.get("events") or [] if isinstance(e, dict)]
        newest = as_datetime(events[0].get("createdAt")) if events else None
        if newest is not None:
            self._events_seen_until[arn] = newest
        stopped: list[Mapping[str, Any]] = []
        if troubled:
            read = self._stopped_tasks(cluster_name, str(service.get("serviceName"))) if list_stopped else []
            stopped = self._with_evidence(read, arn, cluster_name, now)
        wanted = {family_revision(str(service.get("taskDefinition") or "")) or ""}
        if troubled:
            wanted |= {family_revision(str(t.get("taskDefinitionArn") or "")) or "" for t in stopped}
            wanted |= {
                family_revision(str(d.get("taskDefinition") or "")) or "" for d in service.get("deployments") or []
            }
        definitions = self._task_definitions_for(wanted - {""}, budget, troubled=troubled)
        fresh = None
        if troubled and service.get("launchType") != "FARGATE" and capacity is None:
            capacity = fresh = self._read_capacity(cluster)
        providers, groups = (capacity or {}).get("providers", ()), (capacity or {}).get("groups", {})
        instances = (capacity or {}).get("instances", ()) if troubled else ()
        name = str(service.get("serviceName"))
        target_groups: Mapping[str, Mapping[str, Any]] = {}
        if troubled and service.get("loadBalancers"):
            target_groups = self._best_effort(
                lambda: self._target_groups(service), {}, cluster_name, name, "DescribeTargetGroups"
            )
        memory_peak = None
        if troubled and insights_enabled(cluster) and any(_oom_killed(t) for t in stopped):
            memory_peak = self._best_effort(
                lambda: self._memory_peak(cluster_name, name, now), None, cluster_name, name, "GetMetricData"
            )
        view = ServiceView(
            cluster=cluster_name,
            name=str(service.get("serviceName")),
            description=service,
            tags=_tags(service.get("tags")),
            stopped_tasks=tuple(stopped),
            task_definitions=definitions,
            capacity_providers=tuple(providers) if troubled else (),
            auto_scaling_groups=dict(groups) if troubled else {},
            cluster_paused=paused,
            target_groups=target_groups,
            container_instances=tuple(instances),
            memory_peak_mib=memory_peak,
        )
        return view, fresh

    def _with_evidence(
        self, read: list[dict[str, Any]], service_arn: str, cluster: str, now: datetime
    ) -> list[Mapping[str, Any]]:
        """The stopped tasks ECS shows, with those the evidence store kept of the window (ECS's own copy
        of a task wins: it is complete)."""
        key = service_key(service_arn, cluster=cluster)
        evidence = self.evidence
        if evidence is None or key is None:
            return list(read)
        nothing: list[dict[str, Any]] = []
        kept = self._best_effort(
            lambda: evidence.recent(key, now - self.evidence_window), nothing, cluster, key.service, "EvidenceQuery"
        )
        shown = {str(t.get("taskArn")) for t in read}
        return [*read, *(t for t in kept if str(t.get("taskArn")) not in shown)]

    def _stopped_tasks(self, cluster: str, service: str) -> list[dict[str, Any]]:
        params = {"cluster": cluster, "serviceName": service, "desiredStatus": "STOPPED", "maxResults": 100}
        arns = list(self.aws.paginate("ecs", "ListTasks", params, "taskArns"))[:STOPPED_TASKS_PER_SERVICE]
        tasks: list[dict[str, Any]] = []
        for chunk in _chunks(arns, DESCRIBE_TASKS_BATCH):
            response = self.aws.call("ecs", "DescribeTasks", {"cluster": cluster, "tasks": list(chunk)})
            tasks += response.get("tasks") or []
        # A task belongs to the service that started it; anything else in the answer is not evidence here.
        return [t for t in tasks if t.get("group") == f"service:{service}"]

    def _task_definitions_for(
        self, wanted: Iterable[str], budget: list[int], *, troubled: bool
    ) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for revision in sorted(wanted):
            if revision not in self._task_definitions:
                if not troubled and budget[0] <= 0:
                    continue
                budget[0] -= 0 if troubled else 1
                response = self.aws.call("ecs", "DescribeTaskDefinition", {"taskDefinition": revision})
                self._task_definitions[revision] = response["taskDefinition"]
            found[revision] = self._task_definitions[revision]
        return found

    def _read_capacity(self, cluster: Mapping[str, Any]) -> dict[str, Any]:
        names = [n for n in cluster.get("capacityProviders") or [] if not str(n).startswith("FARGATE")]
        registered = int(cluster.get("registeredContainerInstancesCount") or 0)
        cluster_name = str(cluster.get("clusterName"))
        instances: tuple[Mapping[str, Any], ...] = ()
        if registered:
            instances = self._best_effort(
                lambda: self._container_instances(cluster_name), (), cluster_name, None, "DescribeContainerInstances"
            )
        if not names:
            return {"providers": (), "groups": {}, "instances": instances}
        response = self.aws.call("ecs", "DescribeCapacityProviders", {"capacityProviders": names})
        providers = [p for p in response.get("capacityProviders") or [] if p.get("autoScalingGroupProvider")]
        group_names = [
            str(p["autoScalingGroupProvider"].get("autoScalingGroupArn", "")).split("autoScalingGroupName/", 1)[-1]
            for p in providers
        ]
        groups: dict[str, Any] = {}
        if group_names:
            described = self.aws.call(
                "autoscaling", "DescribeAutoScalingGroups", {"AutoScalingGroupNames": group_names}
            )
            groups = {g["AutoScalingGroupName"]: g for g in described.get("AutoScalingGroups") or []}
        return {"providers": tuple(providers), "groups": groups, "instances": instances}

    def _best_effort(self, read: Callable[[], T], default: T, cluster: str, service: str | None, operation: str) -> T:
        """A read that sizes a fix: when it fails, say so and go on without it."""
        try:
            return read()
        except Exception as error:  # noqa: BLE001 - the action falls back to sizing without this evidence
            self._sizing_errors.append(ObserveError(cluster, service, operation, _message(error)))
            return default

    def _container_instances(self, cluster: str) -> tuple[Mapping[str, Any], ...]:
        """Every container instance of the cluster, with its registered and remaining resources."""
        arns = list(
            self.aws.paginate(
                "ecs", "ListContainerInstances", {"cluster": cluster, "maxResults": 100}, "containerInstanceArns"
            )
        )
        instances: list[Mapping[str, Any]] = []
        for chunk in _chunks(arns, DESCRIBE_CONTAINER_INSTANCES_BATCH):
            response = self.aws.call(
                "ecs", "DescribeContainerInstances", {"cluster": cluster, "containerInstances": list(chunk)}
            )
            instances += response.get("containerInstances") or []
        return tuple(instances)

    def _target_groups(self, service: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        """The health-check settings of the service's target groups, by ARN."""
        arns = sorted({str(b["targetGroupArn"]) for b in service.get("loadBalancers") or [] if b.get("targetGroupArn")})
        groups: dict[str, Mapping[str, Any]] = {}
        for chunk in _chunks(arns, DESCRIBE_TARGET_GROUPS_BATCH):
            response = self.aws.call("elbv2", "DescribeTargetGroups", {"TargetGroupArns": list(chunk)})
            groups.update({str(g.get("TargetGroupArn")): g for g in response.get("TargetGroups") or []})
        return groups

    def _memory_peak(self, cluster: str, service: str, now: datetime) -> float | None:
        """Container Insights' highest MemoryUtilized (MiB) of one of the service's tasks lately."""
        window = int(MEMORY_PEAK_WINDOW.total_seconds())
        query = {
            "Id": "peak",
            "MetricStat": {
                "Metric": {
                    "Namespace": INSIGHTS_NAMESPACE,
                    "MetricName": "MemoryUtilized",
                    "Dimensions": [
                        {"Name": "ClusterName", "Value": cluster},
                        {"Name": "ServiceName", "Value": service},
                    ],
                },
                "Period": window,
                "Stat": "Maximum",
            },
        }
        response = self.aws.call(
            "cloudwatch",
            "GetMetricData",
            {"MetricDataQueries": [query], "StartTime": now - MEMORY_PEAK_WINDOW, "EndTime": now},
        )
        values = [float(v) for result in response.get("MetricDataResults") or [] for v in result.get("Values") or []]
        return max(values) if values else None


def insights_enabled(cluster: Mapping[str, Any]) -> bool:
    """Whether the cluster publishes Container Insights metrics (`enabled`, or `enhanced` observability)."""
    return any(
        s.get("name") == "containerInsights" and s.get("value") in ("enabled", "enhanced")
        for s in cluster.get("settings") or []
        if isinstance(s, dict)
    )


def _oom_killed(task: Mapping[str, Any]) -> bool:
    finding = diagnose_task(task)
    return finding is not None and finding.cause is Cause.OOM


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
