"""What a task definition needs before its tasks can start: the execution role's rights and the network paths.

ECS fetches everything a task needs *before* its containers run, with the task execution role, over the
task's own network: the registry login and the image layers (ECR's API, its registry host and S3), the
secrets and parameters it injects, the environment files in S3, the CloudWatch Logs stream. When one of
those fails, the task stops with `CannotPullContainerError` or `ResourceInitializationError`. Read from
the task definition alone, these needs can be checked live (IAM's policy simulator, the VPC's routes and
endpoints) before a deploy, or while a service fails. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.arns import parse_image
from agent.diagnose.fields import text

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ECR_TOKEN = "ecr:GetAuthorizationToken"  # noqa: S105 - an IAM action name
ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
LOG_WRITE = ("logs:CreateLogStream", "logs:PutLogEvents")
LOG_CREATE_GROUP = "logs:CreateLogGroup"
SECRET_READ = "secretsmanager:GetSecretValue"  # noqa: S105 - an IAM action name
PARAMETER_READ = "ssm:GetParameters"
OBJECT_READ = "s3:GetObject"
BUCKET_LOCATION = "s3:GetBucketLocation"

# Names of the AWS services a task reaches (VPC endpoint suffixes), and the public internet.
ECR_API, ECR_DKR, S3, LOGS, SECRETS_MANAGER, SSM, INTERNET = (
    "ecr.api",
    "ecr.dkr",
    "s3",
    "logs",
    "secretsmanager",
    "ssm",
    "internet",
)


@dataclass(frozen=True, slots=True)
class Need:
    """One IAM action on one resource the execution role must be allowed, and what for."""

    action: str
    resource: str
    why: str


@dataclass(frozen=True, slots=True)
class Destination:
    """A service the task's network must reach before its containers start, and what for."""

    service: str  # a VPC endpoint name (`ecr.dkr`, `logs`, ...) or `internet`
    why: str


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret or parameter a container (or its log driver) references."""

    container: str
    name: str  # the environment variable or log option it fills
    source: str  # as written: an ARN, or an SSM parameter name
    kind: str  # `secretsmanager` or `ssm`
    arn: str  # the secret's or parameter's ARN, for IAM


def containers(task_definition: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = task_definition.get("containerDefinitions")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def execution_role_arn(task_definition: Mapping[str, Any]) -> str | None:
    return text(task_definition.get("executionRoleArn")) or None


def account_of(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4].isdigit() else None


def secret_arn(value_from: str, *, region: str, account: str) -> tuple[str, str]:
    """(kind, ARN) of a `valueFrom`: a Secrets Manager ARN (maybe with `:json-key:stage:version`), an SSM
    parameter ARN, or a bare parameter name in the task's own region and account."""
    if value_from.startswith("arn:") and ":secretsmanager:" in value_from:
        return "secretsmanager", ":".join(value_from.split(":")[:7])
    if value_from.startswith("arn:"):
        return "ssm", value_from
    name = value_from if value_from.startswith("/") else f"/{value_from}"
    return "ssm", f"arn:aws:ssm:{region}:{account}:parameter{name}"


def secrets(task_definition: Mapping[str, Any], *, region: str, account: str) -> list[Secret]:
    """Every secret and parameter the task definition references, in its containers and their log options."""
    found: list[Secret] = []
    for container in containers(task_definition):
        name = text(container.get("name"))
        log = container.get("logConfiguration")
        referenced = [
            *(container.get("secrets") or []),
            *((log.get("secretOptions") or []) if isinstance(log, dict) else []),
        ]
        for entry in referenced:
            source = text(entry.get("valueFrom")) if isinstance(entry, dict) else ""
            if source:
                kind, arn = secret_arn(source, region=region, account=account)
                found.append(Secret(name, text(entry.get("name")), source, kind, arn))
        credentials = container.get("repositoryCredentials")
        source = text(credentials.get("credentialsParameter")) if isinstance(credentials, dict) else ""
        if source:
            found.append(Secret(name, "repositoryCredentials", source, "secretsmanager", source))
    return found


def awslogs(container: Mapping[str, Any], region: str) -> tuple[str, str, bool] | None:
    """(log group, its region, create it if missing) of a container that logs with awslogs."""
    log = container.get("logConfiguration")
    if not isinstance(log, dict) or log.get("logDriver") != "awslogs":
        return None
    found = log.get("options")
    options: Mapping[str, Any] = found if isinstance(found, dict) else {}
    group = text(options.get("awslogs-group"))
    if not group:
        return None
    create = text(options.get("awslogs-create-group")).lower() == "true"
    return group, text(options.get("awslogs-region")) or region, create


def _environment_files(container: Mapping[str, Any]) -> Iterator[str]:
    for entry in container.get("environmentFiles") or []:
        value = text(entry.get("value")) if isinstance(entry, dict) else ""
        if value.startswith("arn:aws:s3:::"):
            yield value


def role_needs(task_definition: Mapping[str, Any], *, region: str, account: str, fargate: bool) -> list[Need]:
    """The actions the execution role must be allowed for the task to start, each with its resource.

    On EC2 the Docker daemon's awslogs driver writes with the container instance's role, so log rights
    are the execution role's only on Fargate.
    """
    needs: list[Need] = []
    for container in containers(task_definition):
        name = text(container.get("name"))
        ref = parse_image(text(container.get("image")))
        if ref.is_ecr:
            repository = f"arn:aws:ecr:{ref.ecr_region}:{ref.ecr_account}:repository/{ref.repository}"
            why = f"pull {ref.repository} (container {name})"
            needs.append(Need(ECR_TOKEN, "*", f"log in to ECR (container {name})"))
            needs += [Need(action, repository, why) for action in ECR_PULL]
        logs = awslogs(container, region) if fargate else None
        if logs is not None:
            group, group_region, create = logs
            arn = f"arn:aws:logs:{group_region}:{account}:log-group:{group}:*"
            needs += [Need(action, arn, f"send container {name}'s logs to {group}") for action in LOG_WRITE]
            if create:
                needs.append(Need(LOG_CREATE_GROUP, arn, f"create {group} (awslogs-create-group)"))
        for path in _environment_files(container):
            bucket = path.removeprefix("arn:aws:s3:::").split("/", 1)[0]
            needs.append(Need(OBJECT_READ, path, f"read the environment file of container {name}"))
            needs.append(Need(BUCKET_LOCATION, f"arn:aws:s3:::{bucket}", f"locate bucket {bucket}"))
    for secret in secrets(task_definition, region=region, account=account):
        action = SECRET_READ if secret.kind == "secretsmanager" else PARAMETER_READ
        needs.append(Need(action, secret.arn, f"read {secret.name} of container {secret.container}"))
    return list(dict.fromkeys(needs))


def destinations(task_definition: Mapping[str, Any], *, region: str, fargate: bool) -> list[Destination]:
    """The services the task's network must reach before its containers start (the first reason each)."""
    found: dict[str, Destination] = {}

    def add(service: str, why: str) -> None:
        found.setdefault(service, Destination(service, why))

    for container in containers(task_definition):
        name = text(container.get("name"))
        image = text(container.get("image"))
        ref = parse_image(image)
        if ref.is_ecr:
            for service in (ECR_API, ECR_DKR, S3):
                add(service, f"pull {ref.repository} (container {name}); ECR keeps image layers in S3")
        elif image:
            add(INTERNET, f"pull {image} from a public registry (container {name})")
        if fargate and awslogs(container, region) is not None:
            add(LOGS, f"send container {name}'s logs to CloudWatch Logs")
        if any(True for _ in _environment_files(container)):
            add(S3, f"read the environment files of container {name}")
    for secret in secrets(task_definition, region=region, account="0"):
        service = SECRETS_MANAGER if secret.kind == "secretsmanager" else SSM
        add(service, f"read {secret.name} of container {secret.container}")
    return list(found.values())
