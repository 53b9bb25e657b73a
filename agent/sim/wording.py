"""What ECS, ELB and the container runtime write, word for word, as pure functions of names.

Every message the world shows an agent comes from here, so that the wording can be checked against
real output in one place. The strings follow what AWS prints today (service events, stop reasons,
rollout reasons, the 2024 plain-English pull errors with their curly apostrophe).
"""

from __future__ import annotations

from collections.abc import Sequence

TROUBLESHOOTING = "For more information, see the Troubleshooting section."

# --- service events ------------------------------------------------------------------------------------


def _task_list(task_ids: Sequence[str]) -> str:
    return " ".join(f"(task {task_id})" for task_id in task_ids)


def started_tasks(service: str, task_ids: Sequence[str]) -> str:
    return f"(service {service}) has started {len(task_ids)} tasks: {_task_list(task_ids)}."


def stopped_tasks(service: str, task_ids: Sequence[str]) -> str:
    return f"(service {service}) has stopped {len(task_ids)} running tasks: {_task_list(task_ids)}."


def registered_targets(service: str, count: int, target_group_arn: str) -> str:
    return f"(service {service}) registered {count} targets in (target-group {target_group_arn})"


def deregistered_targets(service: str, count: int, target_group_arn: str) -> str:
    return f"(service {service}) deregistered {count} targets in (target-group {target_group_arn})"


def draining(service: str, deployment_id: str, count: int) -> str:
    return f"(service {service}, taskSet {deployment_id}) has begun draining connections on {count} tasks."


def unhealthy_target(service: str, task_id: str, port: int, target_group_arn: str) -> str:
    return (
        f"(service {service}) (task {task_id}) (port {port}) is unhealthy in (target-group {target_group_arn}) "
        "due to (reason Request timed out)."
    )


def steady_state(service: str) -> str:
    return f"(service {service}) has reached a steady state."


def deployment_completed(service: str, deployment_id: str) -> str:
    return f"(service {service}) (deployment {deployment_id}) deployment completed."


def deployment_failed(service: str, deployment_id: str) -> str:
    return f"(service {service}) (deployment {deployment_id}) deployment failed: tasks failed to start."


def rolling_back(service: str, deployment_id: str) -> str:
    return f"(service {service}) rolling back to deployment {deployment_id}."


def unable_to_start(service: str) -> str:
    return f"(service {service}) is unable to consistently start tasks successfully. {TROUBLESHOOTING}"


def placement_insufficient(service: str, container_instance_id: str, resource: str) -> str:
    """No instance fits: ECS names the closest one and the first resource it lacks."""
    lacking = {
        "CPU": "has insufficient CPU units available.",
        "MEMORY": "has insufficient memory available.",
        "PORTS": "is already using a port required by your task.",
    }[resource]
    return (
        f"(service {service}) was unable to place a task because no container instance met all of its "
        f"requirements. The closest matching (container-instance {container_instance_id}) {lacking} "
        f"{TROUBLESHOOTING}"
    )


def placement_no_instances(service: str) -> str:
    return (
        f"(service {service}) was unable to place a task because no container instance met all of its "
        f"requirements. Reason: No Container Instances were found in your cluster. {TROUBLESHOOTING}"
    )


# --- rollout states ------------------------------------------------------------------------------------


def rollout_in_progress(deployment_id: str) -> str:
    return f"ECS deployment {deployment_id} in progress."


def rollout_completed(deployment_id: str) -> str:
    return f"ECS deployment {deployment_id} completed."


ROLLOUT_FAILED = "ECS deployment circuit breaker: tasks failed to start."
# EventBridge's SERVICE_DEPLOYMENT_FAILED event says it in the singular.
DEPLOYMENT_FAILED_EVENT_REASON = "ECS deployment circuit breaker: task failed to start."


def rollout_rolling_back(completed_deployment_id: str) -> str:
    return f"ECS deployment circuit breaker: rolling back to deploymentId {completed_deployment_id}."


# --- task stops ----------------------------------------------------------------------------------------

ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
USER_STOPPED = "Task stopped by user"


def scaling_activity(deployment_id: str) -> str:
    return f"Scaling activity initiated by (deployment {deployment_id})"


def failed_elb_health_checks(target_group_arn: str) -> str:
    return f"Task failed ELB health checks in (target-group {target_group_arn})"


def host_terminated(ec2_instance_id: str) -> str:
    return f"Host EC2 (instance {ec2_instance_id}) terminated."


def image_not_found(image: str) -> str:
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )


def image_pull_denied(repository: str, account_id: str, role: str, task_id: str, repository_arn: str) -> str:
    """The 2024 wording for a pull the execution role may not make (note the curly apostrophe)."""
    return (
        "CannotPullContainerError: The task can\u2019t pull the image. Check that the role has the permissions "
        "to pull images from the registry. Error response from daemon: pull access denied for "
        f"{repository}, repository does not exist or may require 'docker login': denied: User: "
        f"arn:aws:sts::{account_id}:assumed-role/{role}/{task_id} is not authorized to perform: "
        f"ecr:BatchGetImage on resource: {repository_arn} because no identity-based policy allows the "
        "ecr:BatchGetImage action"
    )


def registry_auth_denied(account_id: str, role: str, task_id: str) -> str:
    """The execution role may not even fetch a registry token (ecr:GetAuthorizationToken)."""
    return (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve ecr registry auth: service call has been retried 3 time(s): "
        f"AccessDeniedException: User: arn:aws:sts::{account_id}:assumed-role/{role}/{task_id} is not "
        "authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy "
        "allows the ecr:GetAuthorizationToken action"
    )


def no_registry_credentials(registry: str, repository: str, tag: str) -> str:
    """No execution role at all: the agent pulls from ECR without credentials."""
    return (
        f"CannotPullContainerError: Error response from daemon: Get https://{registry}/v2/{repository}/manifests/"
        f"{tag}: no basic auth credentials"
    )


def secret_not_found(secret_arn: str, request_id: str) -> str:
    """A `secrets` entry whose Secrets Manager secret does not exist (Fargate platform 1.4)."""
    return (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch "
        f"secret {secret_arn} from secrets manager: ResourceNotFoundException: Secrets Manager can't find the "
        f"specified secret. status code: 400, request id: {request_id}"
    )


LOG_GROUP_MISSING = (
    "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
    "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not "
    "exist. : exit status 1"
)


# --- ELB target health ---------------------------------------------------------------------------------

TARGET_INITIAL = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
TARGET_HEALTHY = ("healthy", None, None)
TARGET_UNHEALTHY = ("unhealthy", "Target.Timeout", "Request timed out")
TARGET_DRAINING = ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")

# --- API errors ----------------------------------------------------------------------------------------

RATE_EXCEEDED = "Rate exceeded"


def asg_desired_out_of_bounds(desired: int, min_size: int, max_size: int) -> str:
    return f"Desired capacity:{desired} must be between the specified min size:{min_size} and max size:{max_size}"


def asg_set_desired_above_max(desired: int, max_size: int) -> str:
    return f"New SetDesiredCapacity value {desired} is above max value {max_size} for the AutoScalingGroup."


def asg_set_desired_below_min(desired: int, min_size: int) -> str:
    return f"New SetDesiredCapacity value {desired} is below min value {min_size} for the AutoScalingGroup."


def assume_role_denied(caller_arn: str, role_arn: str) -> str:
    """STS refusing AssumeRole: no such role, or its trust policy does not let the caller in."""
    return f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
