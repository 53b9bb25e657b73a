"""Names out of AWS identifiers: ARNs, image references, ECS timestamps. Pure string work.

ARNs are split by botocore's own parser (string work only: nothing here talks to AWS), loaded on
first use so that `diagnose --input` starts without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_PARSER: Any = None


def parse_arn(arn: str | None) -> dict[str, str] | None:
    """`{partition, service, region, account, resource}` of an ARN (a new dict); None for anything else."""
    global _PARSER  # noqa: PLW0603 - botocore's parser, loaded on first use (see the module's docstring)
    if not arn or not arn.startswith("arn:"):
        return None
    if _PARSER is None:
        from botocore.utils import ArnParser  # noqa: PLC0415

        _PARSER = ArnParser()
    try:
        parsed: dict[str, str] = _PARSER.parse_arn(arn)
    except ValueError:  # botocore's InvalidArnException: fewer than six parts
        return None
    return parsed


def resource_name(arn_or_name: str) -> str:
    """`arn:aws:ecs:...:cluster/prod` -> `prod`; a bare name is returned as it is."""
    parsed = parse_arn(arn_or_name)
    if parsed is None:
        return arn_or_name.rsplit("/", 1)[-1] if arn_or_name.startswith("arn:") else arn_or_name
    return parsed["resource"].rsplit("/", 1)[-1]


def region_of(arn: str | None) -> str | None:
    parsed = parse_arn(arn)
    return (parsed["region"] or None) if parsed else None


def task_id(task_arn: str) -> str:
    """The short task id an operator sees in the console (last path element of the ARN)."""
    return task_arn.rsplit("/", 1)[-1]


def cluster_of_task(task_arn: str) -> str | None:
    """New-format task ARNs carry the cluster: `task/<cluster>/<id>`."""
    parsed = parse_arn(task_arn)
    path = parsed["resource"].split("/") if parsed else []
    return path[1] if len(path) == 3 else None


def family_revision(task_definition: str | None) -> str | None:
    """`arn:...:task-definition/web:42` -> `web:42`."""
    if not task_definition:
        return None
    return task_definition.rsplit("/", 1)[-1]


def revision_of(task_definition: str) -> int | None:
    """`arn:...:task-definition/web:42` -> 42."""
    _, _, revision = (family_revision(task_definition) or "").partition(":")
    return int(revision) if revision.isdigit() else None


def service_of_group(group: str | None) -> str | None:
    """A task's `group` is `service:<name>` when a service started it."""
    if group and group.startswith("service:"):
        return group.removeprefix("service:")
    return None


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A container image reference, split the way registries address it."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @property
    def ecr_region(self) -> str | None:
        match = _ECR_REGISTRY.match(self.registry or "")
        return match.group("region") if match else None

    @property
    def ecr_account(self) -> str | None:
        match = _ECR_REGISTRY.match(self.registry or "")
        return match.group("account") if match else None

    @property
    def is_ecr(self) -> bool:
        return self.ecr_account is not None


_ECR_REGISTRY = re.compile(r"^(?P<account>\d+)\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")


def parse_image(image: str) -> ImageRef:
    """Split `123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v2` into its parts."""
    rest, _, digest = image.partition("@")
    registry: str | None = None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    repository, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if "/" in tag:  # the colon belonged to nothing after the last slash: no tag
        repository, tag = rest, ""
    return ImageRef(registry=registry, repository=repository, tag=tag or None, digest=digest or None)


_IMAGE_IN_TEXT = re.compile(
    r"(?P<image>\d+\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z0-9._/-]+(?::[A-Za-z0-9._-]+)?)"
)


def image_in_text(text: str) -> str | None:
    """The first ECR image reference quoted in a message, if any."""
    match = _IMAGE_IN_TEXT.search(text)
    return match.group("image") if match else None


def as_datetime(value: object) -> datetime | None:
    """ECS timestamps as boto3 (datetime), AWS CLI v1 (epoch seconds) or CLI v2 (ISO 8601) print them."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z too
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """One ECS service wherever it lives: the unit the work queue, the evidence store and shards key on."""

    account: str
    region: str
    cluster: str
    service: str
    partition: str = "aws"

    @property
    def arn(self) -> str:
        """The service's long-format ARN (`service/<cluster>/<name>`), as ECS has written them since 2021."""
        return f"arn:{self.partition}:ecs:{self.region}:{self.account}:service/{self.cluster}/{self.service}"

    def __str__(self) -> str:
        return self.arn


def service_key(service_arn: str, *, cluster: str | None = None) -> ServiceKey | None:
    """The key of a service ARN; the old format (`service/<name>`) needs `cluster` (a name or an ARN).

    None when `service_arn` is not an ECS service ARN, or is an old-format one and no cluster is known.
    """
    parts = service_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "ecs" or not parts[3] or not parts[4]:
        return None
    path = parts[5].split("/")
    if path[0] != "service" or not all(path[1:]):
        return None
    if len(path) == 3:
        return ServiceKey(parts[4], parts[3], path[1], path[2], parts[1])
    if len(path) == 2 and cluster:
        return ServiceKey(parts[4], parts[3], resource_name(cluster), path[1], parts[1])
    return None
