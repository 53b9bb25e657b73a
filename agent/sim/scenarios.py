"""Named failure scenarios: how each is set up, what an operator sees, and the fix they would apply.

Each scenario builds a small estate in a `World`, breaks it the way it breaks in real life (a
deploy, an IAM change, a load spike), and lets simulated time run until the symptoms show. Its `fix`
is what an operator would do by hand, through public AWS APIs only (boto3 clients from the factory
it is given); the tests check that the fix heals the service within `heal_within` simulated seconds.

Expected causes use `agent.model.Cause`. A deployment that fails without a circuit breaker stays
IN_PROGRESS forever and is diagnosed by its failing tasks' cause (`secrets_error` here: the new
revision references a secret that does not exist), not as `deployment_circuit_breaker`: nothing
stopped it.

Some scenarios are built so that the first fix is not enough: a warm-up that outlasts the first
grace period the tasks' lifetime suggests, a model that needs twice the memory twice, an EC2 service
several instances short, a leak no memory limit holds, a start that hangs however long it is given,
and a revision whose memory was cut below what Container Insights shows it uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.model import Cause
from agent.sim.health import HealthCheck
from agent.sim.profiles import AppProfile
from agent.sim.provision import ECR_PULL_POLICY, ECR_PULL_POLICY_NAME

if TYPE_CHECKING:
    from agent.sim.world import World

ClientFactory = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One failure, end to end.

    name: registry key; title: one line; symptom: what the operator sees first; operator_fix: what
    they do about it; expected_cause: the diagnosis (None for the healthy baseline); cluster and
    services: where to look (the affected services); evidence: fragments that must appear in the
    services' events or stopped tasks; settle: simulated seconds until the symptoms show;
    heal_within: simulated seconds the fix may take to bring every service back to steady state.
    """

    name: str
    title: str
    symptom: str
    operator_fix: str
    expected_cause: Cause | None
    cluster: str
    services: tuple[str, ...]
    evidence: tuple[str, ...]
    build: Callable[[World], None]
    fix: Callable[[ClientFactory], None]
    settle: float = 900.0
    heal_within: float = 1800.0

    def setup(self, world: World) -> None:
        """Build the estate, break it, and let the symptoms develop."""
        self.build(world)
        world.advance(self.settle)


# --- operator fixes, through public APIs only ------------------------------------------------------------


def last_good_task_definition(ecs: Any, cluster: str, service: str) -> str:  # noqa: ANN401 - boto3 client
    """What an operator reads off DescribeServices: the task definition of the COMPLETED deployment."""
    described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    completed = [d for d in described["deployments"] if d.get("rolloutState") == "COMPLETED"]
    if completed:
        return str(max(completed, key=lambda d: d["createdAt"])["taskDefinition"])
    family, _, revision = str(described["taskDefinition"]).rsplit("/", 1)[-1].partition(":")
    return f"{family}:{int(revision) - 1}"


def roll_back(clients: ClientFactory, cluster: str, *services: str) -> None:
    ecs = clients("ecs")
    for service in services:
        ecs.update_service(
            cluster=cluster, service=service, taskDefinition=last_good_task_definition(ecs, cluster, service)
        )


def raise_memory(clients: ClientFactory, cluster: str, service: str, memory: int) -> None:
    """Register a revision with more memory for the task and its container, and deploy it."""
    ecs = clients("ecs")
    current = ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"]
    definition = ecs.describe_task_definition(taskDefinition=current)["taskDefinition"]
    containers = [dict(c, memory=memory) if "memory" in c else dict(c) for c in definition["containerDefinitions"]]
    keep = ("family", "networkMode", "requiresCompatibilities", "executionRoleArn", "cpu")
    revision = ecs.register_task_definition(
        **{k: definition[k] for k in keep if definition.get(k) is not None},
        containerDefinitions=containers,
        memory=str(memory),
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=cluster, service=service, taskDefinition=revision)


def grow_group(clients: ClientFactory, group: str, size: int) -> None:
    clients("autoscaling").update_auto_scaling_group(AutoScalingGroupName=group, MaxSize=size, DesiredCapacity=size)


# --- the scenarios ---------------------------------------------------------------------------------------


def _healthy(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", desired_count=2, tags={"team": "storefront"})


def _no_fix(clients: ClientFactory) -> None:
    del clients


def _web_then(world: World, *, image: str, profile: AppProfile | None, push: bool = True, **service: Any) -> None:  # noqa: ANN401
    """`prod/web` on v1 until steady, then a deploy of `image` (pushed with `profile` unless not `push`)."""
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", **service)
    world.advance(300)
    if push:
        repository, tag = image.split(":", 1)
        world.push_image(repository, tag, profile)
    world.deploy("prod", "web", image=image)


def _image_tag_missing(world: World) -> None:
    _web_then(world, image="web:v2", profile=None, push=False)


def _ecr_permission(world: World) -> None:
    world.add_execution_role("web-execution")
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", execution_role="web-execution")
    world.advance(300)
    world.revoke_ecr_pull("web-execution")
    world.push_image("web", "v2")
    world.deploy("prod", "web", image="web:v2")


def _put_back_policy(clients: ClientFactory) -> None:
    clients("iam").put_role_policy(
        RoleName="web-execution", PolicyName=ECR_PULL_POLICY_NAME, PolicyDocument=json.dumps(ECR_PULL_POLICY)
    )


def _oom(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("api", "v1", AppProfile.memory_hungry(300))
    world.add_service("prod", "api", image="api:v1", memory=512, container_memory=512)
    world.advance(300)
    world.push_image("api", "v2", AppProfile.memory_hungry(900))
    world.deploy("prod", "api", image="api:v2")


_CRASH_LOG = (
    "Traceback (most recent call last):",
    '  File "/app/worker.py", line 12, in <module>',
    "    settings = Settings()",
    "pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings",
    "QUEUE_URL",
    "  Field required [type=missing, input_value={}, input_type=dict]",
)


def _crash_loop(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("worker", "v1")
    world.add_service("prod", "worker", image="worker:v1", load_balanced=False)
    world.advance(300)
    world.push_image("worker", "v2", AppProfile.crashing(*_CRASH_LOG, after_seconds=3))
    world.deploy("prod", "worker", image="worker:v2")


def _bad_entrypoint(world: World) -> None:
    _web_then(world, image="web:v2", profile=AppProfile.bad_entrypoint())


def _placement(
    world: World, *, cluster: str, service: str, instance_cpu: int, instance_memory: int, cpu: int, memory: int
) -> None:
    world.add_ec2_cluster(cluster, instances=2, instance_cpu=instance_cpu, instance_memory=instance_memory, max_size=2)
    world.push_image(service, "v1")
    world.add_service(
        cluster, service, image=f"{service}:v1", desired_count=4, cpu=cpu, memory=memory, load_balanced=False
    )
    world.advance(300)
    # A busy hour: someone (or Application Auto Scaling) asks for two more tasks.
    world.scale(cluster, service, 6)


def _placement_cpu(world: World) -> None:
    _placement(world, cluster="batch", service="reports", instance_cpu=2048, instance_memory=8192, cpu=1024, memory=512)


def _placement_memory(world: World) -> None:
    _placement(
        world, cluster="cache", service="sessions", instance_cpu=4096, instance_memory=4096, cpu=256, memory=1536
    )


def _health_cycling(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("search", "v1", AppProfile.slow_start(20))
    world.add_service("prod", "search", image="search:v1", grace_period=0, health_check=HealthCheck())
    world.advance(300)
    world.push_image("search", "v2", AppProfile.slow_start(120))
    world.deploy("prod", "search", image="search:v2")


def _grace_240(clients: ClientFactory) -> None:
    clients("ecs").update_service(cluster="prod", service="search", healthCheckGracePeriodSeconds=240)


UNKNOWN_DATABASE_URL_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/database-url-Q2fLx7"


def _no_breaker(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("billing", "v1")
    world.add_service("prod", "billing", image="billing:v1", circuit_breaker=(False, False))
    world.advance(300)
    world.push_image("billing", "v2")
    # The new revision reads its database URL from a secret that was created in another account.
    world.deploy("prod", "billing", image="billing:v2", secrets={"DATABASE_URL": UNKNOWN_DATABASE_URL_ARN})


def _enable_breaker(clients: ClientFactory) -> None:
    clients("ecs").update_service(
        cluster="prod",
        service="billing",
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
    )


STORM_SERVICES = ("api", "ledger", "fx", "refunds", "payouts")
_STORM_HEALTHY = "webhooks"


def _storm(world: World) -> None:
    world.add_fargate_cluster("payments")
    for service in (*STORM_SERVICES, _STORM_HEALTHY):
        world.push_image(service, "v41")
        world.add_service("payments", service, image=f"{service}:v41", desired_count=2)
    world.advance(300)
    # A release train tags v42 in its manifests, but the image build failed and nothing was pushed.
    for service in STORM_SERVICES:
        world.deploy("payments", service, image=f"{service}:v42")


def _roll_back_storm(clients: ClientFactory) -> None:
    roll_back(clients, "payments", *STORM_SERVICES)


def _slow_warmup(world: World) -> None:
    # v2 warms a larger cache: 4 minutes before it answers, longer than twice the tasks' lifetime.
    world.add_fargate_cluster("prod")
    world.push_image("catalog", "v1", AppProfile.slow_start(20))
    world.add_service("prod", "catalog", image="catalog:v1", grace_period=0, health_check=HealthCheck())
    world.advance(300)
    world.push_image("catalog", "v2", AppProfile.slow_start(240))
    world.deploy("prod", "catalog", image="catalog:v2")


def _startup_hang(world: World) -> None:
    # v2 waits forever for a migration lock at startup: no grace period is long enough.
    world.add_fargate_cluster("prod")
    world.push_image("checkout", "v1", AppProfile.slow_start(20))
    world.add_service("prod", "checkout", image="checkout:v1", grace_period=0, health_check=HealthCheck())
    world.advance(300)
    world.push_image("checkout", "v2", AppProfile.hanging())
    world.deploy("prod", "checkout", image="checkout:v2")


def _several_instances_short(world: World) -> None:
    # A nightly backfill asks for 20 tasks of 1 vCPU / 2 GiB; two 4 vCPU / 8 GiB instances hold 8.
    world.add_ec2_cluster("etl", instances=2, instance_cpu=4096, instance_memory=8192, max_size=2)
    world.push_image("ingest", "v1")
    world.add_service("etl", "ingest", image="ingest:v1", desired_count=8, cpu=1024, memory=2048, load_balanced=False)
    world.advance(300)
    world.scale("etl", "ingest", 20)


def _large_model(world: World) -> None:
    # v2 loads a model of 1.7 GiB into a 512 MiB container: doubling the limit once is not enough.
    world.add_fargate_cluster("prod")
    world.push_image("ranker", "v1", AppProfile.memory_hungry(300))
    world.add_service("prod", "ranker", image="ranker:v1", memory=512, container_memory=512, load_balanced=False)
    world.advance(300)
    world.push_image("ranker", "v2", AppProfile.memory_hungry(1800))
    world.deploy("prod", "ranker", image="ranker:v2")


def _memory_leak(world: World) -> None:
    # v2 replays its whole order journal into memory at startup, without bound: 4 GiB are gone in 18 s,
    # 8 GiB in 28 s, before a task has been up long enough to count as healthy.
    world.add_fargate_cluster("prod")
    world.push_image("orders", "v1", AppProfile.memory_hungry(2500))
    world.add_service("prod", "orders", image="orders:v1", cpu=1024, memory=4096, container_memory=4096)
    world.advance(300)
    world.push_image("orders", "v2", AppProfile.leaking(1000, mib_per_second=400, ramp_seconds=10))
    world.deploy("prod", "orders", image="orders:v2")


def _right_sized_too_far(world: World) -> None:
    # A cost review cuts the memory from 2 GiB to 512 MiB; the service peaks at 1.1 GiB, as Container
    # Insights has shown for hours.
    world.add_fargate_cluster("prod")
    world.push_image("pricing", "v1", AppProfile.memory_hungry(1100))
    world.add_service("prod", "pricing", image="pricing:v1", memory=2048, container_memory=2048, load_balanced=False)
    world.advance(1800)
    world.deploy("prod", "pricing", memory=512, container_memory=512)


def _grace_360(clients: ClientFactory) -> None:
    clients("ecs").update_service(cluster="prod", service="catalog", healthCheckGracePeriodSeconds=360)


SCENARIOS: Mapping[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="healthy",
            title="A healthy Fargate service behind a load balancer",
            symptom="none: runningCount equals desiredCount and the deployment is COMPLETED",
            operator_fix="nothing to do",
            expected_cause=None,
            cluster="prod",
            services=("web",),
            evidence=("has reached a steady state.",),
            build=_healthy,
            fix=_no_fix,
            settle=300.0,
            heal_within=60.0,
        ),
        Scenario(
            name="image-tag-missing",
            title="A deploy references an image tag that was never pushed",
            symptom="the new deployment's tasks stop with CannotPullContainerError ... not found",
            operator_fix="roll back to the last good task definition (UpdateService to the previous revision)",
            expected_cause=Cause.IMAGE_NOT_FOUND,
            cluster="prod",
            services=("web",),
            evidence=("CannotPullContainerError: pull image manifest has been retried 5 time(s)", ": not found"),
            build=_image_tag_missing,
            fix=lambda clients: roll_back(clients, "prod", "web"),
        ),
        Scenario(
            name="ecr-permission-removed",
            title="The execution role lost its ECR pull permissions before a deploy",
            symptom="tasks stop with CannotPullContainerError: The task can't pull the image ... not authorized",
            operator_fix="put the ECR pull policy back on the execution role",
            expected_cause=Cause.IMAGE_PULL_AUTH,
            cluster="prod",
            services=("web",),
            evidence=("is not authorized to perform: ecr:BatchGetImage",),
            build=_ecr_permission,
            fix=_put_back_policy,
        ),
        Scenario(
            name="oom-exit-137",
            title="A new version needs more memory than its container's hard limit",
            symptom="tasks exit 137 with OutOfMemoryError: Container killed due to memory usage",
            operator_fix="register a revision with more memory (task and container) and deploy it",
            expected_cause=Cause.OOM,
            cluster="prod",
            services=("api",),
            evidence=("OutOfMemoryError: Container killed due to memory usage",),
            build=_oom,
            fix=lambda clients: raise_memory(clients, "prod", "api", 1024),
        ),
        Scenario(
            name="crash-loop",
            title="A new version exits 1 at startup (missing configuration)",
            symptom="tasks stop with Essential container in task exited, exit code 1; the log says why",
            operator_fix="roll back to the last good task definition",
            expected_cause=Cause.APP_CRASH,
            cluster="prod",
            services=("worker",),
            evidence=("Essential container in task exited",),
            build=_crash_loop,
            fix=lambda clients: roll_back(clients, "prod", "worker"),
        ),
        Scenario(
            name="bad-entrypoint",
            title="A new image's entrypoint cannot be executed (built for the wrong architecture)",
            symptom="tasks stop at once with exit code 255; the log says exec format error",
            operator_fix="roll back to the last good task definition",
            expected_cause=Cause.ENTRYPOINT_ERROR,
            cluster="prod",
            services=("web",),
            evidence=("Essential container in task exited",),
            build=_bad_entrypoint,
            fix=lambda clients: roll_back(clients, "prod", "web"),
        ),
        Scenario(
            name="placement-cpu",
            title="An EC2 cluster has no CPU left for two more tasks",
            symptom="service event: unable to place a task ... has insufficient CPU units available",
            operator_fix="raise the Auto Scaling group's desired and max size",
            expected_cause=Cause.PLACEMENT_CPU,
            cluster="batch",
            services=("reports",),
            evidence=("has insufficient CPU units available.",),
            build=_placement_cpu,
            fix=lambda clients: grow_group(clients, "batch-asg", 3),
            settle=300.0,
        ),
        Scenario(
            name="placement-memory",
            title="An EC2 cluster has no memory left for two more tasks",
            symptom="service event: unable to place a task ... has insufficient memory available",
            operator_fix="raise the Auto Scaling group's desired and max size",
            expected_cause=Cause.PLACEMENT_MEMORY,
            cluster="cache",
            services=("sessions",),
            evidence=("has insufficient memory available.",),
            build=_placement_memory,
            fix=lambda clients: grow_group(clients, "cache-asg", 3),
            settle=300.0,
        ),
        Scenario(
            name="health-check-cycling",
            title="A slower-starting version is killed by ELB health checks before it is ready",
            symptom="tasks cycle: registered, unhealthy (Request timed out), draining, stopped, started",
            operator_fix="raise the service's health-check grace period to 240 seconds",
            expected_cause=Cause.HEALTH_CHECK_ELB,
            cluster="prod",
            services=("search",),
            evidence=("is unhealthy in (target-group", "Task failed ELB health checks in (target-group"),
            build=_health_cycling,
            fix=_grace_240,
        ),
        Scenario(
            name="deployment-no-circuit-breaker",
            title="A deploy references a missing secret, and no circuit breaker stops it",
            symptom="the PRIMARY deployment stays IN_PROGRESS while failedTasks climbs (ResourceInitializationError)",
            operator_fix="enable the deployment circuit breaker with rollback; ECS then rolls back",
            expected_cause=Cause.SECRETS_ERROR,
            cluster="prod",
            services=("billing",),
            evidence=("unable to retrieve secret from asm", "Secrets Manager can't find the specified secret"),
            build=_no_breaker,
            fix=_enable_breaker,
        ),
        Scenario(
            name="health-check-slow-warmup",
            title="A version that warms a bigger cache outlasts the first grace period its tasks suggest",
            symptom="tasks cycle on ELB health checks; after a first raise they live longer and still cycle",
            operator_fix="raise the service's health-check grace period to 360 seconds",
            expected_cause=Cause.HEALTH_CHECK_ELB,
            cluster="prod",
            services=("catalog",),
            evidence=("Task failed ELB health checks in (target-group",),
            build=_slow_warmup,
            fix=_grace_360,
        ),
        Scenario(
            name="health-check-hang",
            title="A new version hangs at startup waiting for a lock: no grace period is long enough",
            symptom="tasks cycle on ELB health checks (Request timed out) however long they are given",
            operator_fix="roll back to the last good task definition",
            expected_cause=Cause.HEALTH_CHECK_ELB,
            cluster="prod",
            services=("checkout",),
            evidence=("Task failed ELB health checks in (target-group",),
            build=_startup_hang,
            fix=lambda clients: roll_back(clients, "prod", "checkout"),
        ),
        Scenario(
            name="placement-several-instances",
            title="An EC2 service scaled out for a backfill is three instances short",
            symptom="service event: unable to place a task ... insufficient CPU units; 12 of 20 tasks missing",
            operator_fix="raise the Auto Scaling group's desired and max size from 2 to 5",
            expected_cause=Cause.PLACEMENT_CPU,
            cluster="etl",
            services=("ingest",),
            evidence=("has insufficient CPU units available.",),
            build=_several_instances_short,
            fix=lambda clients: grow_group(clients, "etl-asg", 5),
            settle=300.0,
        ),
        Scenario(
            name="oom-large-model",
            title="A new version loads a model three times larger than its container's memory",
            symptom="tasks exit 137 with OutOfMemoryError; with twice the memory they still do",
            operator_fix="register a revision with 2048 MiB (task and container) and deploy it",
            expected_cause=Cause.OOM,
            cluster="prod",
            services=("ranker",),
            evidence=("OutOfMemoryError: Container killed due to memory usage",),
            build=_large_model,
            fix=lambda clients: raise_memory(clients, "prod", "ranker", 2048),
        ),
        Scenario(
            name="oom-memory-leak",
            title="A new version leaks memory without bound: no limit holds it",
            symptom="tasks exit 137 with OutOfMemoryError, later with more memory, but always",
            operator_fix="roll back to the last good task definition",
            expected_cause=Cause.OOM,
            cluster="prod",
            services=("orders",),
            evidence=("OutOfMemoryError: Container killed due to memory usage",),
            build=_memory_leak,
            fix=lambda clients: roll_back(clients, "prod", "orders"),
        ),
        Scenario(
            name="oom-after-right-sizing",
            title="A cost review cut the memory below what the service uses at its peak",
            symptom="tasks of the new revision exit 137 with OutOfMemoryError; the old ones peak at 1.1 GiB",
            operator_fix="register a revision with 2048 MiB again and deploy it",
            expected_cause=Cause.OOM,
            cluster="prod",
            services=("pricing",),
            evidence=("OutOfMemoryError: Container killed due to memory usage",),
            build=_right_sized_too_far,
            fix=lambda clients: raise_memory(clients, "prod", "pricing", 2048),
        ),
        Scenario(
            name="storm",
            title="A release train breaks five services of one cluster at once",
            symptom="most services of the payments cluster stop starting tasks (image tag not found)",
            operator_fix="roll back each failing service to its last good task definition",
            expected_cause=Cause.IMAGE_NOT_FOUND,
            cluster="payments",
            services=STORM_SERVICES,
            evidence=("CannotPullContainerError",),
            build=_storm,
            fix=_roll_back_storm,
        ),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called `name`; KeyError naming the valid ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r}; valid: {', '.join(sorted(SCENARIOS))}") from None
