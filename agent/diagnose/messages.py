"""Read one ECS message (a stop reason, a container reason, a service event, a RunTask failure).

ECS prefixes name the *phase* that failed, not the cause: `CannotPullContainerError` covers missing
permissions, a missing tag, no network path and a full disk alike. So every message is routed by
what it is about (pulling, secrets, logging, ...) and then read for the detail that names the cause.
The wording differs between Docker-era agents (`API error (500)`, `Error response from daemon`),
containerd-era Fargate (`ResourceInitializationError`, `ref pull has been retried 5 time(s)`), the
2024 plain-English prefixes (`The task can't pull the image. Check ...`, curly apostrophe) and truncated copies, so the
patterns match fragments and normalise case and apostrophes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from agent.model import Cause


@dataclass(frozen=True, slots=True)
class Reading:
    """What one message says: the cause and, in a few words, why."""

    cause: Cause
    because: str


def normalize(text: str) -> str:
    """Lower-case, straight apostrophes, single spaces: the form every pattern is written for."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").lower().split())


def _any(*fragments: str) -> re.Pattern[str]:
    return re.compile("|".join(fragments))


# --- what a message is about -------------------------------------------------------------------------
_ECR_AUTH_CALL = _any(r"ecr registry auth", r"ecr:getauthorizationtoken")
_SECRETS = _any(
    r"retrieve secrets?\b",
    r"secrets? from (?:asm|ssm)",
    r"fetch secret",
    r"secretsmanager",
    r"secrets manager",
    r"getsecretvalue",
    r"ssm:getparameter",
    r"parameter ?store",
    r"parameternotfound",
    r"invalid parameters?:",
    r"env ?files?",
    r"environment files?",
)
_PULL = _any(
    r"cannotpullcontainer",
    r"can'?t pull the image",
    r"cannot pull",
    r"unable to pull",
    r"pull image",
    r"image pull",
    r"pull command",
    r"ref pull",
    r"pulling image",
    r"error pulling",
    r"failed to resolve ref",
    r"pull access denied",
    r"manifest unknown",
    r"manifest for \S+ not found",
    r"registry auth",
    r"image reference",
    r"registry endpoint",
    r"api\.ecr\.",
    r"\.dkr\.ecr\.",
    r"toomanyrequests",
    r"pull rate limit",
)
_LOGGING = _any(
    r"logging driver",
    r"logger args",
    r"log stream",
    r"log group",
    r"logs:createlogstream",
    r"logs:putlogevents",
    r"firelens",
    r"fluent ?bit",
    r"log ?configuration",
)
_VOLUME = _any(
    r"efs utils",
    r"rootfs_linux\.go",
    r"error creating device nodes",
    r"efs volume",
    r"mount target",
    r"error while mounting",
    r"invalid mount",
    r"mounting .* failed",
    r"failed to mount",
    r"mount: ",
    r"\bnfs\b",
    r"volume.*(?:not found|failed|does not exist)",
)
_HOST_DISK = _any(
    r"no space left on device",
    r"devicemapper",
    r"failed to register layer",
    r"thin pool has",
    r"free data blocks",
    r"disk quota exceeded",
    r"ephemeral storage",
)

# --- details that name the cause ----------------------------------------------------------------------
_AUTH = _any(
    r"not authorized to perform",
    r"accessdenied",
    r"access denied(?! for)",
    r"access to kms is not allowed",
    r"check that the role has the permissions",
    r"\b401\b",
    r"\b403\b",
    r"unauthorized",
    r"forbidden",
    r"no basic auth credentials",
    r"authorization token has expired",
    r"authentication required",
    r"incorrect username or password",
    r"security token .* invalid",
    r"expiredtoken",
    r"asm fetching secret from the service for",
    r"failed to authorize",
    r"anonymous token",
    r"failed open: unexpected status code",
    r"pull access denied",
)
_NOT_FOUND = _any(
    r"check whether the image exists",
    r"requested access to the resource is denied",
    r"manifest unknown",
    r"manifest for \S+ not found",
    r"\bnot found\b",
    r"notfound",
    r"does not exist",
    r"repository .* not found",
    r"name unknown",
    r"invalid reference format",
    r"normalize image reference",
    r"descriptor matching platform",
    r"no matching manifest",
    r"\b404\b",
)
_NETWORK = _any(
    r"check your network configuration",
    r"could not reach",
    r"failed to do request",
    r"i/o tim",
    r"dial tcp",
    r"context deadline exceeded",
    r"request canceled",
    r"client\.timeout",
    r"awaiting headers",
    r"send request failed",
    r"requesterror",
    r"no such host",
    r"connection reset",
    r"connection refused",
    r"network is unreachable",
    r"no route to host",
    r"tls handshake timeout",
    r"timeout exceeded",
    r"signal: killed",
    r"eof\b",
)
_RATE_LIMIT = _any(r"toomanyrequests", r"pull rate limit", r"rate exceeded", r"throttl")
_RESOLVE_REF = _any(r"failed to resolve ref")
# Registries answer "denied" for a repository that does not exist, so as not to reveal which exist.
_DENIED_AS_NOT_FOUND = _any(r"requested access to the resource is denied", r"insufficient_scope")

_OOM = _any(
    r"outofmemory",
    r"out of memory",
    r"\boom\b",
    r"oom-?kill",
    r"killed due to memory",
    r"memory usage",
    r"memory\.limit_in_bytes",
    r"memory limit",
    r"cannot allocate memory",
)
_ENTRYPOINT = _any(
    r"executable file not found",
    r"exec format error",
    r"exec: [^:]*: (?:stat|permission denied|no such file)",
    r"exec user process caused",
    r"(?:starting container process|unable to start container process).*(?:no such file|permission denied|exec)",
)
_ELB_HEALTH = _any(
    r"failed elb health checks",
    r"elb health check",
    r"is unhealthy in \(?(?:target-group|elb)",
    r"target\.(?:responsecodemismatch|timeout|failedhealthchecks)",
    r"health checks failed with these codes",
)
_CIRCUIT_BREAKER = _any(r"circuit breaker", r"deployment failed", r"rolling back to", r"rolled back")
_CONTAINER_HEALTH = _any(r"failed container health checks", r"container health check")
_SPOT = _any(r"spot task was interrupted", r"spot interruption", r"spotinterruption", r"spot capacity")
_HOST = _any(
    r"host ec2 \(instance \S+\) (?:stopped|terminated)",
    r"host ec2",
    r"container instance deregistration",
    r"instance (?:\S+ )?(?:is )?(?:being )?(?:drain|terminat|stopp|retir)",
    r"draining",
    r"maintenance on the underlying infrastructure",
    r"infrastructure maintenance",
    r"platform version .* retire",
    r"task retirement",
    r"scheduled for retirement",
    r"agent (?:was )?disconnected",
    r"encountered error \"?agent",
    r"\"agent\"",
    r"terminationnotice",
    r"infrastructurehealth",
    r"underlying host",
    r"instance health",
)
_TIMEOUT_START = _any(
    r"containerruntimetimeouterror",
    r"dockertimeouterror",
    r"could not transition to",
    r"timed out after waiting",
    r"cannotinspectcontainererror",
    r"container runtime did not",
    r"transition to (?:running|created|started|inspecting)",
    r"timeout while starting",
)
_ENI = _any(
    r"network interface provisioning",
    r"\beni\b",
    r"elastic network interface",
    r"networkinterface",
    r"network interface",
    r"free (?:ip )?addresses",
    r"insufficientfreeaddressesinsubnet",
    r"ip addresses? available",
    r"assign (?:an )?ip",
    r"resource:eni",
)
_CAPACITY = _any(
    r"capacity is unavailable",
    r"above your limit",
    r"insufficient capacity",
    r"capacity unavailable",
    r"resource:fargate",
    r"reached the limit on the number of tasks",
    r"limit on the number of",
    r"service ?quota",
    r"quota",
    r"vcpu limit",
    r"no container instances were found",
    r"no container instances? (?:in|were)",
    r"operations are being throttled",
    r"being throttled",
    r"throttl",
    r"rate exceeded",
    r"toomanyrequests",
    r"pull rate limit",
    r"insufficient gpu",
    r"resource:gpu",
    r"limitexceeded",
)
_PLACEMENT_CPU = _any(r"insufficient cpu", r"enough cpu", r"resource:cpu", r"cpu units? available")
_PLACEMENT_MEMORY = _any(r"insufficient memory", r"enough memory", r"resource:memory", r"memory available")
_PLACEMENT_PORTS = _any(
    r"already using a port",
    r"port (?:is )?already (?:allocated|in use)",
    r"address already in use",
    r"resource:ports",
    r"ports? required by your task",
)
_PLACEMENT_ATTRIBUTES = _any(
    r"missing an attribute",
    r"\battribute\b",
    r"placement constraint",
    r"memberof",
    r"distinct_instance",
    r"distinctinstance",
    r"does not satisfy the task definition",
    r"required capabilities",
    r"platform does not",
    r"\blocation\b",
    r"no container instance met all of its requirements",
)
_IAM = _any(
    r"unable to assume",
    r"service[- ]linked role",
    r"assume ?role",
    r"iam:passrole",
    r"not authorized to perform",
    r"accessdenied",
    r"trust relationship",
    r"service-linked role",
    r"servicelinkedrole",
)
_USER_STOP = _any(r"stopped by user", r"task stopped by", r"userinitiated", r"user initiated", r"stoptask")
_SCALE_OR_DEPLOY = _any(
    r"scaling activity initiated by",
    r"scale-in",
    r"scale in",
    r"scaling activity",
    r"deployment ecs-svc",
    r"deployment \(?ecs-svc",
    r"replaced by (?:a )?deployment",
    r"service deployment",
    r"rolling back",
    r"task set",
    r"taskset",
    r"desired count",
)


def _pull(text: str) -> Reading:
    if _HOST_DISK.search(text):
        return Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the host's disk is full while pulling")
    if _DENIED_AS_NOT_FOUND.search(text) and not _any(r"not authorized to perform").search(text):
        return Reading(Cause.IMAGE_NOT_FOUND, "the image or tag does not exist")
    if _AUTH.search(text):
        return Reading(Cause.IMAGE_PULL_AUTH, "the image pull was denied for lack of permission")
    if _NETWORK.search(text):
        return Reading(Cause.IMAGE_PULL_NETWORK, "the registry could not be reached")
    if _RATE_LIMIT.search(text):
        return Reading(Cause.CAPACITY_QUOTA, "the registry's pull rate limit was reached")
    if _NOT_FOUND.search(text):
        return Reading(Cause.IMAGE_NOT_FOUND, "the image or tag does not exist")
    if _RESOLVE_REF.search(text):
        # containerd could not resolve the tag to a digest and the message says nothing of access or
        # transport (often it was cut off there): the tag is missing far more often than not.
        return Reading(Cause.IMAGE_NOT_FOUND, "the image tag could not be resolved, most likely it does not exist")
    return Reading(Cause.UNKNOWN, "the image pull failed for a reason the message does not give")


def _secrets(text: str) -> Reading:
    if _NETWORK.search(text):
        return Reading(Cause.SECRETS_ERROR, "the secrets service could not be reached")
    if _AUTH.search(text):
        return Reading(Cause.SECRETS_ERROR, "reading a secret was denied")
    if _NOT_FOUND.search(text):
        return Reading(Cause.SECRETS_ERROR, "a referenced secret does not exist")
    return Reading(Cause.SECRETS_ERROR, "a secret or environment file could not be fetched")


# Checked in order, first match wins: from the most specific subject to the most general, because
# one message often mentions several (a log-group failure also says "check your network").
_RULES: tuple[tuple[re.Pattern[str], Reading], ...] = (
    (_LOGGING, Reading(Cause.LOG_CONFIG_ERROR, "the container's log configuration could not be set up")),
    (_VOLUME, Reading(Cause.VOLUME_ERROR, "a volume could not be mounted")),
    (_HOST_DISK, Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the host's disk is full")),
    (_OOM, Reading(Cause.OOM, "the container ran out of memory")),
    (
        _CIRCUIT_BREAKER,
        Reading(Cause.DEPLOYMENT_CIRCUIT_BREAKER, "the deployment failed and was stopped or rolled back"),
    ),
    (_ELB_HEALTH, Reading(Cause.HEALTH_CHECK_ELB, "the load balancer's health checks failed")),
    (_CONTAINER_HEALTH, Reading(Cause.HEALTH_CHECK_CONTAINER, "the container's own health check failed")),
    (_SPOT, Reading(Cause.SPOT_INTERRUPTION, "Spot capacity was reclaimed")),
    (_TIMEOUT_START, Reading(Cause.TIMEOUT_START, "the container runtime timed out starting the container")),
    (_ENI, Reading(Cause.NETWORK_ENI, "the task's network interface could not be provisioned")),
    (_PLACEMENT_PORTS, Reading(Cause.PLACEMENT_PORTS, "the host port the task needs is taken")),
    (_ENTRYPOINT, Reading(Cause.ENTRYPOINT_ERROR, "the container's command could not be executed")),
    (_HOST, Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the host stopped or was drained")),
    (_PLACEMENT_CPU, Reading(Cause.PLACEMENT_CPU, "no container instance has enough free CPU")),
    (_PLACEMENT_MEMORY, Reading(Cause.PLACEMENT_MEMORY, "no container instance has enough free memory")),
    (_CAPACITY, Reading(Cause.CAPACITY_QUOTA, "capacity or an account quota ran out")),
    (_IAM, Reading(Cause.IAM_PERMISSION, "ECS lacks an IAM permission or cannot assume a role")),
    (
        _PLACEMENT_ATTRIBUTES,
        Reading(Cause.PLACEMENT_ATTRIBUTES, "no container instance matches the placement constraints"),
    ),
    (_USER_STOP, Reading(Cause.USER_STOP, "someone stopped the task")),
    (_SCALE_OR_DEPLOY, Reading(Cause.SCALE_IN_OR_DEPLOY, "the scheduler replaced or scaled in the task")),
)


# A fleet repeats a few messages per service; remembering the answers for tens of thousands of
# distinct texts costs a few MB and spares re-reading each one on every pass.
@lru_cache(maxsize=32768)
def read_message(text: str) -> Reading | None:
    """The cause one message names, or None when it names none (informational, or empty).

    Pulls and secrets are read first and in depth: their wrappers mention each other (a secrets
    failure arrives as "unable to pull secrets or registry auth").
    """
    t = normalize(text)
    if not t:
        return None
    if _ECR_AUTH_CALL.search(t):
        return _pull(t)
    if _SECRETS.search(t):
        return _secrets(t)
    if _PULL.search(t):
        return _pull(t)
    return next((reading for pattern, reading in _RULES if pattern.search(t)), None)


_EXIT_CODE_IN_TEXT = re.compile(r"exit code:? ?(-?\d+)", re.IGNORECASE)


def exit_code_in(text: str) -> int | None:
    """An exit code written into a message (`... Exit code: 137`), if any."""
    match = _EXIT_CODE_IN_TEXT.search(text)
    return int(match.group(1)) if match else None
