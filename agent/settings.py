"""Settings, from `ECS_MEDIC_*` environment variables; a command-line flag overrides its variable.

AWS itself is configured the standard way (`AWS_REGION`, the credential chain, `AWS_ENDPOINT_URL`);
nothing here duplicates it. Names are flat (`ECS_MEDIC_MODE`, not nested) because operators type them.
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


def bundled_policies() -> Path:
    """The default policies: the container image's, a checkout's, or the installed package's copy."""
    checkout = Path(__file__).resolve().parent.parent / "policies"
    for candidate in (Path("/etc/ecs-medic/policies"), checkout, Path(sys.prefix) / "share" / "ecs-medic" / "policies"):
        if candidate.is_dir():
            return candidate
    return checkout


class Mode(StrEnum):
    DRY_RUN = "dry-run"
    ENFORCE = "enforce"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Everything ecs-medic reads from its environment, with units and defaults."""

    model_config = SettingsConfigDict(env_prefix="ECS_MEDIC_", extra="ignore", frozen=True)

    # --- what to watch and how often
    mode: Mode = Field(default=Mode.DRY_RUN, description="`dry-run` (no mutating AWS call, ever) or `enforce`.")
    clusters: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated cluster names or ARNs; empty means every cluster in the region."
    )
    policies: Path = Field(default_factory=bundled_policies, description="A policy file or a folder of them.")
    poll_interval_seconds: float = Field(default=30.0, gt=0, description="Seconds between reconcile passes.")

    # --- safety
    max_actions_per_hour: int = Field(default=20, ge=0, description="Global cap on applied actions per hour.")
    storm_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Pause enforcement in a cluster when more than this fraction of its services fail at once.",
    )
    storm_min_failing: int = Field(
        default=3, ge=1, description="...and at least this many services fail (small clusters are not storms)."
    )
    paused: bool = Field(default=False, description="Pause switch: propose only, act nowhere (also a cluster tag).")
    managed_tag: str = Field(
        default="ecs-medic:managed",
        description="Only services tagged `<managed_tag>=true` are acted on; every selected service is diagnosed.",
    )
    approval_ttl_seconds: float = Field(default=3600.0, gt=0, description="How long an approval stays valid.")
    verify_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Seconds an action has to bring its service to steady state."
    )

    # --- reporting and coordination
    metrics_port: int = Field(default=9740, ge=0, le=65535, description="HTTP port for /metrics and probes.")
    log_format: LogFormat = Field(default=LogFormat.JSON, description="`json` or `console`.")
    events_queue_url: str | None = Field(
        default=None, description="SQS queue fed by an EventBridge rule on `aws.ecs` events: react within seconds."
    )
    lease_table: str | None = Field(
        default=None, description="DynamoDB table for leader election between replicas; unset = single replica."
    )

    # --- scale: evidence, API budget, accounts and Regions
    evidence_table: str | None = Field(
        default=None,
        description="DynamoDB table (keys `service`, `task`; TTL attribute `expiresAt`) keeping stopped-task "
        "evidence beyond ECS's hour; unset = memory only.",
    )
    evidence_retention_seconds: float = Field(
        default=86400.0, gt=0, description="How long evidence stays in the evidence table after the task stopped."
    )
    api_budget_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="The agent's share of each ECS throttling bucket (burst and refill rate), per account and "
        "Region, divided among the replicas.",
    )
    assume_role_arns: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated IAM role ARNs to assume, one per member account; empty = own account."
    )
    assume_role_external_id: str | None = Field(
        default=None,
        min_length=2,
        max_length=1224,
        pattern=r"^[\w+=,.@:/-]+$",
        description="The external ID the member accounts' roles require (sts:ExternalId).",
    )
    regions: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated Regions to watch in every account; empty = the SDK's Region."
    )

    @field_validator("clusters", "assume_role_arns", "regions", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("assume_role_arns")
    @classmethod
    def _role_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not _ROLE_ARN.fullmatch(arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)")
        return value

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for region in value:
            if not _REGION.fullmatch(region):
                raise ValueError(f"{region!r} is not a Region name (e.g. eu-west-1)")
        return value
