"""Amazon ECS's request throttling, as AWS publishes it: one token bucket per category of API actions,
per account and Region, shared by every caller (the console, CI/CD, other tools, this agent).

Source: Amazon ECS API Reference, "Request throttling for the Amazon ECS API", table "Request Token
Bucket Sizes and Refill Rates" (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html).
Burst is the bucket's capacity (the most calls in any one second), rate its refill per second (the
sustained rate). A throttled call fails with `ThrottlingException` (HTTP 400, "Rate exceeded").
Accounts can have these raised through AWS Support; the published values are the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EcsBucket:
    name: str  # the category, as a metric label
    burst: float  # bucket maximum capacity
    rate: float  # bucket refill rate, per second
    operations: frozenset[str]


def _bucket(name: str, burst: float, rate: float, *operations: str) -> EcsBucket:
    return EcsBucket(name, burst, rate, frozenset(operations))


ECS_BUCKETS: tuple[EcsBucket, ...] = (
    _bucket(
        "cluster-modify",
        20,
        1,
        "CreateCluster",
        "DeleteCluster",
        "PutClusterCapacityProviders",
        "UpdateCluster",
        "UpdateClusterSettings",
    ),
    _bucket("cluster-read", 50, 20, "DescribeClusters", "ListClusters"),
    _bucket("task-definition-modify", 20, 1, "DeregisterTaskDefinition", "RegisterTaskDefinition"),
    _bucket(
        "task-definition-read", 50, 20, "DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies"
    ),
    _bucket("task-definition-deletion", 5, 1, "DeleteTaskDefinitions"),
    _bucket(
        "capacity-provider-modify", 10, 1, "CreateCapacityProvider", "DeleteCapacityProvider", "UpdateCapacityProvider"
    ),
    _bucket("capacity-provider-read", 50, 20, "DescribeCapacityProviders"),
    _bucket("tag-modify", 20, 10, "TagResource", "UntagResource"),
    _bucket("tag-read", 50, 20, "ListTagsForResource"),
    _bucket("setting-modify", 10, 1, "DeleteAccountSetting", "PutAccountSetting", "PutAccountSettingDefault"),
    _bucket("setting-read", 50, 20, "ListAccountSettings"),
    _bucket(
        "cluster-resource-modify",
        100,
        40,
        "DeleteAttributes",
        "DeregisterContainerInstance",
        "ExecuteCommand",
        "PutAttributes",
        "RunTask",
        "StartTask",
        "StopTask",
        "UpdateContainerAgent",
        "UpdateContainerInstancesStates",
    ),
    _bucket(
        "cluster-resource-read",
        100,
        20,
        "DescribeContainerInstances",
        "DescribeTasks",
        "ListAttributes",
        "ListContainerInstances",
        "ListTasks",
    ),
    _bucket(
        "agent-modify",
        200,
        120,
        "RegisterContainerInstance",
        "SubmitAttachmentStateChanges",
        "SubmitContainerStateChange",
        "SubmitTaskStateChange",
    ),
    _bucket("service-modify", 50, 5, "CreateService", "DeleteService", "UpdateService"),
    _bucket("service-read", 100, 20, "DescribeServices", "ListServices"),
    _bucket("service-deployment", 50, 20, "DescribeServiceDeployments", "ListServiceDeployments"),
    _bucket("service-revision", 50, 20, "DescribeServiceRevisions"),
    _bucket("task-protection", 200, 80, "UpdateTaskProtection", "GetTaskProtection"),
    _bucket("cluster-service-resource-read", 10, 1, "ListServicesByNamespace"),
)

# An ECS action the table does not list (a newer API): treated as the strictest published bucket, so
# the agent's budget errs on the side of calling less.
UNLISTED = EcsBucket("unlisted", 5, 1, frozenset())

_BY_OPERATION = {operation: bucket for bucket in ECS_BUCKETS for operation in bucket.operations}
BY_NAME = {bucket.name: bucket for bucket in (*ECS_BUCKETS, UNLISTED)}


def ecs_bucket(operation: str) -> EcsBucket:
    """The throttling bucket an ECS action draws from."""
    return _BY_OPERATION.get(operation, UNLISTED)
