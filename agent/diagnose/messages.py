"""Read one ECS message (a stop reason, a container reason, a service event, a RunTask failure).

ECS prefixes name the *phase* that failed, not the cause: `CannotPullContainerError` covers missing
permissions, a missing tag, no network path, a registry's rate limit and a full disk alike. So every
message is first routed to a *family* by what it is about (pulling, secrets, logging, volumes, starting
the container, placement, ...) and then read for the *stable part* of a template that names the cause:
the words ECS or the registry always writes, never the names, ids, counts and addresses that change
from one account to the next. The wording differs between Docker-era agents (`API error (500)`, `Error
response from daemon`), containerd-era Fargate (`ResourceInitializationError`, `ref pull has been
retried 5 time(s)`), the 2024 plain-English messages (`The task can't pull the image. Check ...`, curly
apostrophes) and copies cut off mid-word, so the patterns match fragments of normalised text.

When a family is recognised but no template decides, or nothing is recognised at all, the reading is
`unknown` and says which causes were nearest and what wording would tell them apart (`Reading.nearest`),
so that a person, or a new template, can finish the job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from agent.model import Cause

if TYPE_CHECKING:
    from collections.abc import Iterable

Nearest = tuple[tuple[Cause, str], ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """What one message says: the cause and, in a few words, why.

    `template` names the stable wording that decided it (empty for readings built from stop codes or
    exit codes). For `unknown`, `nearest` holds the causes it could be, each with the wording that would
    prove it.
    """

    cause: Cause
    because: str
    template: str = ""
    nearest: Nearest = ()


def normalize(text: str) -> str:
    """Lower-case, straight apostrophes, single spaces: the form every pattern is written for."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").lower().split())


_ESCAPED_LITERALS = frozenset(".-/:'\"()[]?*+$^|{} ")
_MIN_ANCHOR = 3


def _group_end(fragment: str, index: int) -> int:
    """The index just past the group or class that opens at `index`."""
    opening = fragment[index]
    closing = ")" if opening == "(" else "]"
    depth = 0
    while index < len(fragment):
        if fragment[index] == "\\":
            index += 2
            continue
        depth += (fragment[index] == opening) - (fragment[index] == closing)
        index += 1
        if depth == 0:
            break
    return index


def _anchor(fragment: str) -> str | None:
    """The longest run of plain text that every match of `fragment` contains, or None when it has no run of
    at least three characters (or an alternation at its top level). Conservative: every group, class,
    wildcard, escape class and optional character breaks the run."""
    runs: list[str] = [""]
    index = 0
    while index < len(fragment):
        char = fragment[index]
        if char == "|":
            return None  # alternatives at the top level: no single literal is required
        if char in "([":
            index = _group_end(fragment, index)
            runs.append("")
            continue
        if char == "\\":
            escaped = fragment[index + 1 : index + 2]
            # An escaped literal extends the run; \b, \s, \S, \d and \w are classes or boundaries.
            literal = escaped in _ESCAPED_LITERALS
            runs[-1] += escaped if literal else ""
            runs += [] if literal else [""]
            index += 2
            continue
        if char in "?*{":
            runs[-1] = runs[-1][:-1]  # the character before is optional
        breaks = char in "?*{+.^$"
        runs[-1] += "" if breaks else char
        runs += [""] if breaks else []
        index += 1
    longest = max(runs, key=len)
    return longest if len(longest) >= _MIN_ANCHOR else None


class _Fragments:
    """Fragments of text, any of which names something; a cheap substring test runs before the regex.

    Python's regex engine tries every alternative at every position of a message; most messages contain
    none of a family's fragments, and finding that out with `in` on a literal each fragment must contain
    costs a fraction of the search. The answer is the regex's own.
    """

    __slots__ = ("anchors", "pattern")

    def __init__(self, *fragments: str) -> None:
        self.pattern = re.compile("|".join(fragments))
        anchors = [_anchor(fragment) for fragment in fragments]
        if any(anchor is None for anchor in anchors):
            self.anchors: tuple[str, ...] = ()
            return
        unique = sorted({a for a in anchors if a is not None}, key=len)
        # An anchor that contains another adds nothing: the shorter one is present whenever it is.
        self.anchors = tuple(a for i, a in enumerate(unique) if not any(b in a for b in unique[:i]))

    def search(self, text: str) -> re.Match[str] | None:
        if not self.anchors:
            return self.pattern.search(text)
        for anchor in self.anchors:  # a plain loop: a generator costs more than the test itself
            if anchor in text:
                return self.pattern.search(text)
        return None


def _any(*fragments: str) -> _Fragments:
    return _Fragments(*fragments)


# --- what would prove each cause, for the causes an unknown message is nearest to --------------------------
SIGNS: dict[Cause, str] = {
    Cause.IMAGE_NOT_FOUND: "'manifest unknown', 'not found' or 'requested access to the resource is denied' "
    "after the image reference",
    Cause.IMAGE_PULL_AUTH: "'not authorized to perform: ecr:...', '403 Forbidden', 'no basic auth credentials' "
    "or 'pull access denied'",
    Cause.IMAGE_PULL_NETWORK: "'i/o timeout', 'dial tcp', 'context deadline exceeded', 'request canceled' or "
    "'connection issue' on the way to the registry",
    Cause.CAPACITY_QUOTA: "'toomanyrequests', '429', 'Rate exceeded', 'Capacity is unavailable' or 'reached the limit'",
    Cause.OOM: "'OutOfMemoryError', 'OOM-killed' or 'memory limit' in a container reason, or MemoryUtilized "
    "at the container's limit",
    Cause.APP_CRASH: "the essential container's own exit code (1, 2, 134, 139...) and its last log lines",
    Cause.ENTRYPOINT_ERROR: "'executable file not found in $PATH', 'exec format error', 'exec: ...: permission "
    "denied', or exit code 126, 127 or 255",
    Cause.SECRETS_ERROR: "'unable to retrieve secret from asm', 'secrets from ssm', 'ParameterNotFound' or "
    "'can't retrieve the secret'",
    Cause.LOG_CONFIG_ERROR: "'failed to initialize logging driver', 'logger args' or 'log group does not exist'",
    Cause.VOLUME_ERROR: "'EFS utils', 'mount.nfs4', 'failed to mount' or 'CannotCreateVolumeError'",
    Cause.PLACEMENT_CPU: "'insufficient CPU units available' or 'RESOURCE:CPU'",
    Cause.PLACEMENT_MEMORY: "'insufficient memory available' or 'RESOURCE:MEMORY'",
    Cause.PLACEMENT_PORTS: "'is already using a port required by your task' or 'RESOURCE:PORTS'",
    Cause.PLACEMENT_ATTRIBUTES: "'is missing an attribute required by your task', 'ATTRIBUTE', 'LOCATION' or a "
    "placement constraint",
    Cause.HEALTH_CHECK_ELB: "'failed ELB health checks' or 'is unhealthy in (target-group ...)'",
    Cause.HEALTH_CHECK_CONTAINER: "'failed container health checks'",
    Cause.DEPLOYMENT_CIRCUIT_BREAKER: "'ECS deployment circuit breaker' or 'rolling back to'",
    Cause.SPOT_INTERRUPTION: "stopCode SpotInterruption or 'Your Spot Task was interrupted.'",
    Cause.INSTANCE_DRAIN_OR_HOST_FAILURE: "'no space left on device', 'Host EC2 (instance ...) stopped/terminated', "
    "'AGENT', or an agent or Docker daemon failure on the instance",
    Cause.TIMEOUT_START: "'Could not transition to running; timed out after waiting ...'",
    Cause.NETWORK_ENI: "'network interface provisioning', 'RESOURCE:ENI' or 'InsufficientFreeAddressesInSubnet'",
    Cause.IAM_PERMISSION: "'ECS was unable to assume the role', 'service linked role', 'iam:PassRole' or "
    "'trust relationship'",
    Cause.SCALE_IN_OR_DEPLOY: "stopCode ServiceSchedulerInitiated with 'Scaling activity initiated by (deployment "
    "...)'",
    Cause.USER_STOP: "stopCode UserInitiated or 'Task stopped by user'",
}


def nearest(causes: Iterable[Cause]) -> Nearest:
    """The causes with what would prove each (the order given is kept; duplicates dropped)."""
    return tuple((cause, SIGNS[cause]) for cause in dict.fromkeys(causes) if cause in SIGNS)


def nearest_evidence(candidates: Nearest) -> tuple[str, ...]:
    """Evidence lines for an unknown finding: each cause it was nearest to and what would prove it."""
    return tuple(f"could be {cause.value}: look for {sign}" for cause, sign in candidates)


def _unknown(because: str, causes: Iterable[Cause], template: str = "") -> Reading:
    return Reading(Cause.UNKNOWN, because, template, nearest(causes))


# Words that hint at a cause when no template decides, to rank the causes an unknown message is nearest to.
_CUES: tuple[tuple[Cause, re.Pattern[str]], ...] = tuple(
    (cause, re.compile(pattern))
    for cause, pattern in (
        (Cause.IMAGE_NOT_FOUND, r"not found|manifest|\btag\b|does not exist|repository|unknown"),
        (Cause.IMAGE_PULL_AUTH, r"denied|auth|forbidden|credential|token|permission"),
        (Cause.IMAGE_PULL_NETWORK, r"timeout|dial|connection|network|cancel|\beof\b|tls|unreachable"),
        (Cause.CAPACITY_QUOTA, r"limit|quota|rate|throttl|capacity|too many"),
        (Cause.OOM, r"memory|\boom|killed"),
        (Cause.ENTRYPOINT_ERROR, r"exec|entrypoint|command|executable|no such file"),
        (Cause.SECRETS_ERROR, r"secret|\bssm\b|\basm\b|parameter|\bkms\b"),
        (Cause.LOG_CONFIG_ERROR, r"\blog|driver|fluent|firelens"),
        (Cause.VOLUME_ERROR, r"volume|mount|\befs\b|\bnfs|driver|\bebs\b|fsx"),
        (Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, r"\bhost|instance|agent|disk|space|daemon|containerd|runtime"),
        (Cause.TIMEOUT_START, r"timed out|timeout|transition"),
        (Cause.NETWORK_ENI, r"\beni\b|interface|subnet|\bip\b|address|attach"),
        (Cause.IAM_PERMISSION, r"\brole|\biam\b|assume|passrole|trust"),
        (Cause.PLACEMENT_ATTRIBUTES, r"attribute|constraint|placement|zone"),
        (Cause.HEALTH_CHECK_ELB, r"target|elb|load balancer"),
        (Cause.HEALTH_CHECK_CONTAINER, r"health"),
        (Cause.APP_CRASH, r"\bexit|crash"),
    )
)


def ranked(text: str, among: Iterable[Cause] = (), *, limit: int = 4) -> tuple[Cause, ...]:
    """The causes an unrecognised message is nearest to: those of its family (`among`, in that order
    when nothing tips the balance), or any, ranked by how many of their cue words it contains."""
    t = normalize(text)
    pool = tuple(dict.fromkeys(among))
    scores = {cause: len(pattern.findall(t)) for cause, pattern in _CUES if not pool or cause in pool}
    order = sorted(pool or scores, key=lambda c: -scores.get(c, 0))
    if not pool:
        order = [c for c in order if scores.get(c, 0)]
    return tuple(order[:limit])


# When not even a cue word helps: the failures that most often stop a task or a service.
COMMON_CAUSES = (Cause.APP_CRASH, Cause.IMAGE_NOT_FOUND, Cause.IMAGE_PULL_NETWORK, Cause.HEALTH_CHECK_ELB)


def guess(
    text: str, among: Iterable[Cause] = (), *, limit: int = 4, default: Iterable[Cause] = COMMON_CAUSES
) -> Nearest:
    """`ranked`, with what would prove each cause (`default` when no cue word matches at all)."""
    return nearest(ranked(text, among, limit=limit) or tuple(default)[:limit])


# --- what a message is about (its family) ---------------------------------------------------------------
_ECR_AUTH_CALL = _any(
    r"ecr registry auth",
    r"ecr: ?getauthorizationtoken",
    r"pull registry auth from amazon ecr",
)
_SECRETS = _any(
    r"retrieve secrets?\b",
    r"retrieve the secret",
    r"secrets? from (?:asm|ssm)",
    r"fetch secret",
    r"fetching secret data",
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
    r"cannotpull",
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
    r"while pulling image",
)
_LOGGING = _any(
    r"logging driver",
    r"logger args",
    r"log stream",
    r"log group",
    r"logs:createlogstream",
    r"logs:createloggroup",
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
    r"cannotcreatevolumeerror",
    r"invalidvolumeerror",
    r"could not be autoprovisioned",
    r"volumedriver",
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
    r"authorization failed",
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
    r"\b404\b",
)
_PLATFORM = _any(
    r"descriptor matching platform",
    r"descriptor for platform",
    r"no matching manifest",
    r"no match for platform",
)
_NETWORK = _any(
    r"check your (?:task )?network configuration",
    r"connection issue",
    r"could not reach",
    r"failed to do request",
    r"i/o tim",
    r"dial tcp",
    r"context deadline exceeded",
    r"context canceled",
    r"request canceled",
    r"client\.timeout",
    r"awaiting headers",
    r"send request failed",
    r"request send failed",
    r"requesterror",
    r"no such host",
    r"connection reset",
    r"connection refused",
    r"network is unreachable",
    r"no route to host",
    r"tls handshake timeout",
    r"timeout exceeded",
    r"exceeded maximum number of attempts",
    r"inactivity time exceeded",
    r"nil pointer dereference",
    r"signal: killed",
    r"eof\b",
)
_RATE_LIMIT = _any(r"toomanyrequests", r"\b429 too many requests", r"pull rate limit", r"rate exceeded", r"throttl")
_RESOLVE_REF = _any(r"failed to resolve ref")
_BARE_API_ERROR = re.compile(r"api error\.?$")
# Registries answer "denied" for a repository that does not exist, so as not to reveal which exist.
_DENIED_AS_NOT_FOUND = _any(r"requested access to the resource is denied", r"insufficient_scope")
_ROLE_DENIED = re.compile(r"not authorized to perform")

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
    r"failed to get container status",  # AWS documents it for a container that exceeds its memory
)
_ENTRYPOINT = _any(
    r"executable file not found",
    r"exec format error",
    r"exec: [^:]*: (?:stat|permission denied|no such file)",
    r"exec user process caused",
    r"(?:starting|unable to start) container process.*(?:no such file|permission denied|exec)",
)
_ELB_HEALTH = _any(
    r"failed elb health checks",
    r"elb health check",
    r"is unhealthy in \(?(?:target-group|elb)",
    r"is not healthy in \(?target-group",
    r"target\.(?:responsecodemismatch|timeout|failedhealthchecks)",
    r"health checks failed with these codes",
)
_CIRCUIT_BREAKER = _any(r"circuit breaker", r"deployment failed", r"rolling back to", r"rolled back")
_CONTAINER_HEALTH = _any(r"failed container health checks?", r"container health checks? failed")
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
    r"timed out waiting for amazon ecs agent",
    r"agent could not progress",
    r"taskstateerror",
    r"containervanishederror",
    r"no container matching saved id",
    r"cannotstopcontainererror",
    r"^containerruntimeerror\b",
)
_TIMEOUT_START = _any(
    r"containerruntimetimeouterror",
    r"dockertimeouterror",
    r"could not tran\w+ to",
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
    r"failed to setup network namespace",
    r"containernetworkingerror",
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
    r"provisioning capacity limit",
    r"could not launch \S+ tasks? for deployment",
    r"empty capacity provider",
    r"no active instances",
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
    r"not compatible with the selected compute strategy",
)
_IAM = _any(
    r"unable to assume",
    r"service[- ]linked role",
    r"assume ?role",
    r"iam:passrole",
    r"not authorized to perform",
    r"accessdenied",
    r"trust relationship",
    r"servicelinkedrole",
    r"iam permissions policies",
    r"misconfigured or changed",
)
_USER_STOP = _any(
    r"stopped by user",
    r"task stopped by",
    r"(?:killed|terminated|cancell?ed|stopped) by (?:the )?user",
    r"userinitiated",
    r"user initiated",
    r"stoptask",
)
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
_PROTECTED_TASKS = re.compile(r"protected tasks")
_DEPLOYMENT_CONFIGURATION = re.compile(r"minimumhealthypercent|maximumpercent")
_DEPENDENCY_EXITED = re.compile(r"container ordering dependency.*did not exit successfully")
_DEPENDENCY = re.compile(r"dependency graph|container ordering dependency|dependencies cannot be resolved")
_TASK_FAILED_TO_START_CODE = re.compile(r"^taskfailedtostart: (?P<code>.+?)\.?$")
_TASK_FAILED_TO_START = re.compile(r"^task ?failed ?to ?start\.?$")
_INTERNAL_ERROR = re.compile(r"^internalerror\b")
_INTERNAL_ERROR_EVENT = re.compile(r"^internal error\.?$")
_RESOURCE_INIT = re.compile(r"resourceinitializationerror|unable to pull secrets or registry auth")
_START_PHASE = re.compile(r"cannotstartcontainer|cannotcreatecontainer|oci runtime|failed to create shim")

# The causes each family can end in, nearest first: what `unknown` offers when no template of the family
# decides.
PULL_CAUSES = (
    Cause.IMAGE_NOT_FOUND,
    Cause.IMAGE_PULL_AUTH,
    Cause.IMAGE_PULL_NETWORK,
    Cause.CAPACITY_QUOTA,
    Cause.INSTANCE_DRAIN_OR_HOST_FAILURE,
)
_RESOURCE_INIT_CAUSES = (
    Cause.SECRETS_ERROR,
    Cause.IMAGE_PULL_NETWORK,
    Cause.IMAGE_PULL_AUTH,
    Cause.LOG_CONFIG_ERROR,
    Cause.VOLUME_ERROR,
)
_START_CAUSES = (
    Cause.ENTRYPOINT_ERROR,
    Cause.OOM,
    Cause.VOLUME_ERROR,
    Cause.LOG_CONFIG_ERROR,
    Cause.INSTANCE_DRAIN_OR_HOST_FAILURE,
)
TASK_START_CAUSES = (
    Cause.IMAGE_NOT_FOUND,
    Cause.IMAGE_PULL_AUTH,
    Cause.IMAGE_PULL_NETWORK,
    Cause.SECRETS_ERROR,
    Cause.LOG_CONFIG_ERROR,
    Cause.NETWORK_ENI,
)

# RunTask/StartTask `failures[].reason` codes, also written after `TaskFailedToStart: ` in stop reasons.
REASON_CODES: dict[str, Reading] = {
    "RESOURCE:CPU": Reading(Cause.PLACEMENT_CPU, "no container instance has enough free CPU", "RESOURCE:CPU"),
    "RESOURCE:MEMORY": Reading(
        Cause.PLACEMENT_MEMORY, "no container instance has enough free memory", "RESOURCE:MEMORY"
    ),
    "RESOURCE:PORTS": Reading(
        Cause.PLACEMENT_PORTS, "the host port the task needs is taken everywhere", "RESOURCE:PORTS"
    ),
    "RESOURCE:PORTS_UDP": Reading(
        Cause.PLACEMENT_PORTS, "the UDP host port the task needs is taken everywhere", "RESOURCE:PORTS_UDP"
    ),
    "RESOURCE:ENI": Reading(Cause.NETWORK_ENI, "no container instance has a free ENI", "RESOURCE:ENI"),
    "RESOURCE:GPU": Reading(Cause.CAPACITY_QUOTA, "no container instance has a free GPU", "RESOURCE:GPU"),
    "RESOURCE:FARGATE": Reading(Cause.CAPACITY_QUOTA, "Fargate capacity or quota ran out", "RESOURCE:FARGATE"),
    "ATTRIBUTE": Reading(
        Cause.PLACEMENT_ATTRIBUTES, "no container instance has the attributes the task requires", "ATTRIBUTE"
    ),
    "DISTINCT_INSTANCE": Reading(
        Cause.PLACEMENT_ATTRIBUTES, "the distinctInstance constraint cannot be met", "DISTINCT_INSTANCE"
    ),
    "MEMBEROF PLACEMENT CONSTRAINT UNSATISFIED": Reading(
        Cause.PLACEMENT_ATTRIBUTES,
        "no container instance meets the memberOf placement constraint",
        "MemberOf placement constraint unsatisfied",
    ),
    "LOCATION": Reading(Cause.PLACEMENT_ATTRIBUTES, "no container instance is in the required location", "LOCATION"),
    "AGENT": Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the container instance's agent is disconnected", "AGENT"),
    "INACTIVE": Reading(
        Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the container instance is inactive or draining", "INACTIVE"
    ),
    "NO ACTIVE INSTANCES": Reading(
        Cause.CAPACITY_QUOTA, "the capacity provider has no active instances", "NO ACTIVE INSTANCES"
    ),
    "EMPTY CAPACITY PROVIDER": Reading(
        Cause.CAPACITY_QUOTA,
        "the cluster has no instances: the capacity provider is empty or its instances are not registered",
        "EMPTY CAPACITY PROVIDER",
    ),
}


def _pull(text: str) -> Reading:
    if _HOST_DISK.search(text):
        return Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the host's disk is full while pulling", "pull/disk-full")
    if _DENIED_AS_NOT_FOUND.search(text) and not _ROLE_DENIED.search(text):
        return Reading(Cause.IMAGE_NOT_FOUND, "the image or tag does not exist", "pull/denied-means-missing")
    if _RATE_LIMIT.search(text):
        # Before auth: a registry's 429 arrives as "failed open: unexpected status code ... 429".
        return Reading(Cause.CAPACITY_QUOTA, "the registry's pull rate limit was reached", "pull/rate-limit")
    if _AUTH.search(text):
        return Reading(Cause.IMAGE_PULL_AUTH, "the image pull was denied for lack of permission", "pull/denied")
    if _NETWORK.search(text) or _BARE_API_ERROR.search(text):
        return Reading(Cause.IMAGE_PULL_NETWORK, "the registry could not be reached", "pull/no-network-path")
    if _PLATFORM.search(text):
        return Reading(
            Cause.IMAGE_NOT_FOUND,
            "the image has no variant for the task's platform (CPU architecture or OS)",
            "pull/no-platform-variant",
        )
    if _NOT_FOUND.search(text):
        return Reading(Cause.IMAGE_NOT_FOUND, "the image or tag does not exist", "pull/not-found")
    if _RESOLVE_REF.search(text):
        # containerd could not resolve the tag to a digest and the message says nothing of access or
        # transport (often it was cut off there): the tag is missing far more often than not.
        return Reading(
            Cause.IMAGE_NOT_FOUND,
            "the image tag could not be resolved, most likely it does not exist",
            "pull/unresolved-ref",
        )
    if "secrets or registry auth" in text and not _ECR_AUTH_CALL.search(text):
        # Only the wrapper survived (it was cut off): a secret, or the registry's credentials, or the path to them.
        return _unknown(
            "a secret or the registry's credentials could not be fetched, and the message stops before saying which",
            ranked(text, (Cause.IMAGE_PULL_NETWORK, Cause.SECRETS_ERROR, Cause.IMAGE_PULL_AUTH)),
            "ResourceInitializationError",
        )
    return _unknown(
        "the image pull failed for a reason the message does not give", ranked(text, PULL_CAUSES), "pull/unreadable"
    )


def _secrets(text: str) -> Reading:
    if _NETWORK.search(text):
        return Reading(Cause.SECRETS_ERROR, "the secrets service could not be reached", "secrets/no-network-path")
    if _AUTH.search(text):
        return Reading(Cause.SECRETS_ERROR, "reading a secret was denied", "secrets/denied")
    if _NOT_FOUND.search(text) or "can't find" in text or "can't retrieve" in text:
        return Reading(Cause.SECRETS_ERROR, "a referenced secret does not exist", "secrets/not-found")
    return Reading(Cause.SECRETS_ERROR, "a secret or environment file could not be fetched", "secrets/failed")


# Checked in order, first match wins: from the most specific subject to the most general, because
# one message often mentions several (a log-group failure also says "check your network").
_RULES: tuple[tuple[_Fragments | re.Pattern[str], Reading], ...] = (
    (
        _PROTECTED_TASKS,
        _unknown(
            "task scale-in protection keeps more tasks than the desired count (UpdateTaskProtection)",
            (Cause.SCALE_IN_OR_DEPLOY, Cause.DEPLOYMENT_CIRCUIT_BREAKER),
            "task-protection",
        ),
    ),
    (
        _DEPLOYMENT_CONFIGURATION,
        _unknown(
            "the deployment configuration (minimumHealthyPercent, maximumPercent) leaves no room to stop or start "
            "a task",
            (Cause.PLACEMENT_PORTS, Cause.CAPACITY_QUOTA),
            "deployment-configuration",
        ),
    ),
    (_LOGGING, Reading(Cause.LOG_CONFIG_ERROR, "the container's log configuration could not be set up", "logging")),
    (_VOLUME, Reading(Cause.VOLUME_ERROR, "a volume could not be mounted", "volume")),
    (_HOST_DISK, Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the host's disk is full", "host/disk-full")),
    (_OOM, Reading(Cause.OOM, "the container ran out of memory", "oom")),
    (
        _CIRCUIT_BREAKER,
        Reading(
            Cause.DEPLOYMENT_CIRCUIT_BREAKER,
            "the deployment failed and was stopped or rolled back",
            "deployment/circuit-breaker",
        ),
    ),
    (_ELB_HEALTH, Reading(Cause.HEALTH_CHECK_ELB, "the load balancer's health checks failed", "health/elb")),
    (
        _CONTAINER_HEALTH,
        Reading(Cause.HEALTH_CHECK_CONTAINER, "the container's own health check failed", "health/container"),
    ),
    (_SPOT, Reading(Cause.SPOT_INTERRUPTION, "Spot capacity was reclaimed", "spot")),
    (
        _TIMEOUT_START,
        Reading(Cause.TIMEOUT_START, "the container runtime timed out starting the container", "runtime/timeout"),
    ),
    (_ENI, Reading(Cause.NETWORK_ENI, "the task's network interface could not be provisioned", "network-interface")),
    (_PLACEMENT_PORTS, Reading(Cause.PLACEMENT_PORTS, "the host port the task needs is taken", "placement/ports")),
    (_ENTRYPOINT, Reading(Cause.ENTRYPOINT_ERROR, "the container's command could not be executed", "entrypoint")),
    (_HOST, Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the host stopped, was drained or failed", "host")),
    (
        _PLACEMENT_CPU,
        Reading(Cause.PLACEMENT_CPU, "no container instance has enough free CPU", "placement/cpu"),
    ),
    (
        _PLACEMENT_MEMORY,
        Reading(Cause.PLACEMENT_MEMORY, "no container instance has enough free memory", "placement/memory"),
    ),
    (_CAPACITY, Reading(Cause.CAPACITY_QUOTA, "capacity or an account quota ran out", "capacity")),
    (_IAM, Reading(Cause.IAM_PERMISSION, "ECS lacks an IAM permission or cannot assume a role", "iam")),
    (
        _PLACEMENT_ATTRIBUTES,
        Reading(
            Cause.PLACEMENT_ATTRIBUTES,
            "no container instance matches the placement constraints",
            "placement/attributes",
        ),
    ),
    (_USER_STOP, Reading(Cause.USER_STOP, "someone stopped the task", "user-stop")),
    (
        _SCALE_OR_DEPLOY,
        Reading(Cause.SCALE_IN_OR_DEPLOY, "the scheduler replaced or scaled in the task", "scale-in-or-deploy"),
    ),
)

_DEPENDENCY_FAILED = Reading(
    Cause.APP_CRASH,
    "a container it depends on exited unsuccessfully",
    "dependency/did-not-exit-successfully",
)
_INTERNAL_ERROR_ENI = Reading(
    Cause.NETWORK_ENI,
    "ECS gave up waiting for the task's network interface (AWS documents TaskFailedToStart InternalError for "
    "ENI provisioning that outlasts ECS's timeout)",
    "InternalError",
)


def _last_resort(t: str) -> Reading | None:
    """Templates that only decide when nothing more specific did."""
    if _DEPENDENCY_EXITED.search(t):
        return _DEPENDENCY_FAILED
    if _DEPENDENCY.search(t):
        return _unknown(
            "a container waited on another that never became ready",
            (Cause.APP_CRASH, Cause.HEALTH_CHECK_CONTAINER, Cause.ENTRYPOINT_ERROR),
            "dependency/unresolved",
        )
    if _TASK_FAILED_TO_START.search(t):
        return _unknown(
            "the task failed to start; the containers' reasons name the phase that failed",
            TASK_START_CAUSES,
            "TaskFailedToStart",
        )
    if _INTERNAL_ERROR_EVENT.search(t):
        return _unknown(
            "ECS reported an internal error (AWS documents it for a subnet in an Availability Zone that Fargate "
            "does not support)",
            (Cause.PLACEMENT_ATTRIBUTES, Cause.NETWORK_ENI, Cause.CAPACITY_QUOTA),
            "internal-error",
        )
    if _INTERNAL_ERROR.search(t):
        return _INTERNAL_ERROR_ENI
    if _RESOURCE_INIT.search(t):
        return _unknown(
            "a resource the task needs could not be set up, and the message stops before saying which",
            ranked(t, _RESOURCE_INIT_CAUSES),
            "ResourceInitializationError",
        )
    if _START_PHASE.search(t):
        return _unknown(
            "the container could not be created or started, for a reason not in the catalogue",
            ranked(t, _START_CAUSES),
            "container-start",
        )
    return None


# A fleet repeats a few messages per service; remembering the answers for tens of thousands of
# distinct texts costs a few MB and spares re-reading each one on every pass.
@lru_cache(maxsize=32768)
def read_message(text: str) -> Reading | None:
    """The cause one message names, or None when it names none (informational, or empty).

    Pulls and secrets are read first and in depth: their wrappers mention each other (a secrets
    failure arrives as "unable to pull secrets or registry auth"). A recognised family whose detail is
    missing or unfamiliar reads as `unknown`, with the causes it is nearest to.
    """
    t = normalize(text)
    if not t or t.startswith("essential container in task exited"):
        return None  # says only *that* a container exited; the containers say why (and this is most stops)
    code = _TASK_FAILED_TO_START_CODE.match(t)
    if code is not None and (coded := REASON_CODES.get(code.group("code").strip().upper())) is not None:
        return coded
    if _ECR_AUTH_CALL.search(t):
        return _pull(t)
    if _SECRETS.search(t):
        return _secrets(t)
    if _PULL.search(t):
        return _pull(t)
    found = next((reading for pattern, reading in _RULES if pattern.search(t)), None)
    return found or _last_resort(t)


_EXIT_CODE_IN_TEXT = re.compile(r"exit code:? ?(-?\d+)", re.IGNORECASE)


def exit_code_in(text: str) -> int | None:
    """An exit code written into a message (`... Exit code: 137`), if any."""
    match = _EXIT_CODE_IN_TEXT.search(text)
    return int(match.group(1)) if match else None
