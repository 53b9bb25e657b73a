"""Settings, from `ECS_MEDIC_*` environment variables; a command-line flag overrides its variable.

AWS itself is configured the standard way (`AWS_REGION`, the credential chain, `AWS_ENDPOINT_URL`);
nothing here duplicates it. Names are flat (`ECS_MEDIC_MODE`, not nested) because operators type them.
Durations take the same forms as policies (`30s`, `5m`, `1h`) or plain seconds, and are bounded: a
setting that would break the agent is refused at start, naming the variable.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.policy.duration import parse_duration

ENV_PREFIX = "ECS_MEDIC_"
# Read by the repository's scripts, not by the agent: no warning for them.
_NOT_SETTINGS = frozenset({"ECS_MEDIC_TOOLS_DIR", "ECS_MEDIC_IMAGE_STATE", "ECS_MEDIC_IMAGE_SKIP_RUN"})
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")

Seconds = Annotated[float, BeforeValidator(parse_duration)]  # `30s`, `5m`, `1h`, or seconds; at most 365d


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


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Settings(BaseSettings):
    """Everything ecs-medic reads from its environment, with units and defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # --- what to watch and how often
    mode: Mode = Field(default=Mode.DRY_RUN, description="`dry-run` (no mutating AWS call, ever) or `enforce`.")
    clusters: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated cluster names or ARNs; empty means every cluster in the region."
    )
    policies: Path = Field(default_factory=bundled_policies, description="A policy file or a folder of them.")
    poll_interval_seconds: Seconds = Field(
        default=30.0, gt=0, le=3600, description="Time between reconcile passes (`30s`, `5m`; at most 1h)."
    )

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
    approval_ttl_seconds: Seconds = Field(
        default=3600.0, gt=0, le=7 * 86400, description="How long an approval stays valid (at most 7d)."
    )
    verify_timeout_seconds: Seconds = Field(
        default=600.0, gt=0, le=86400, description="Time an action has to bring its service to steady state (<= 1d)."
    )
    max_action_seconds: float = Field(
        default=90.0,
        gt=0,
        le=600,
        description="Seconds one change may take, every call and retry included; nothing of it is sent later.",
    )
    approval_key_id: str | None = Field(
        default=None,
        description="KMS asymmetric key (ECC_NIST_P256, SIGN_VERIFY) approvals are signed with; unset: no approvals.",
    )
    approval_max_ttl_seconds: float = Field(
        default=86400.0, gt=0, le=7 * 86400, description="The longest an approval may stay valid, whatever it asks."
    )

    # --- reporting and coordination
    listen_address: str = Field(
        default="0.0.0.0",  # noqa: S104 - probes and Prometheus reach the agent from outside its container
        description="Address the HTTP endpoints listen on: `0.0.0.0` (every interface), `127.0.0.1`, `::`.",
    )
    metrics_port: int = Field(default=9740, ge=0, le=65535, description="HTTP port for /metrics and probes.")
    log_format: LogFormat | None = Field(
        default=None, description="`json` or `console`; unset: JSON for `run`, console for one-shot commands."
    )
    log_level: LogLevel | None = Field(
        default=None, description="`debug`, `info`, `warning`, `error`; unset: info for `run`, warning otherwise."
    )
    events_queue_url: str | None = Field(
        default=None, description="SQS queue fed by an EventBridge rule on `aws.ecs` events: react within seconds."
    )
    lease_table: str | None = Field(
        default=None, description="DynamoDB table for leader election between replicas; unset = single replica."
    )
    replicas: int = Field(
        default=1,
        ge=1,
        description="How many agents run (the chart's replicaCount, the stack's DesiredCount): "
        "more than 1 in enforce mode needs `lease_table`.",
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Split the services into this many shards by a hash of their ARN; each replica reconciles "
        "the shards whose lease it holds (enforce mode, with `lease_table`). 1: one leader acts on all.",
    )
    resync_interval_seconds: Seconds = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="With an events queue: time between full resyncs, the safety net behind the events "
        "(`10m`; at most 1d). Without one, every pass is a full resync, at the poll interval.",
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

    # --- notifications (agent.notify) ----------------------------------------------------------------------
    # Each channel is optional; none configured means nothing is sent. Dry-run sends notifications too:
    # publishing to this one topic is the only write the gateway allows in dry-run.
    notify_sns_topic_arn: str | None = Field(
        default=None, description="SNS topic ARN for notifications (email, SMS, AWS Chatbot); unset = no SNS."
    )
    notify_webhook_url: SecretStr | None = Field(
        default=None, description="Incoming-webhook URL (a credential: prefer notify_webhook_secret_arn)."
    )
    notify_webhook_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret holding the webhook URL (or JSON with a `url` key)."
    )
    notify_webhook_format: Literal["slack", "text"] = Field(
        default="slack",
        description='`slack`: Block Kit blocks and a text fallback (Slack, Mattermost); `text`: {"text"} only '
        "(Google Chat and receivers that refuse unknown fields).",
    )
    notify_rate_per_minute: float = Field(
        default=20.0, gt=0, description="Per channel: at most this many notifications a minute (bursts of as many)."
    )

    @field_validator("notify_sns_topic_arn", "notify_webhook_url", "notify_webhook_secret_arn", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("notify_sns_topic_arn")
    @classmethod
    def _sns_topic(cls, value: str | None) -> str | None:
        return _arn_of(value, "sns", "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")

    @field_validator("notify_webhook_secret_arn")
    @classmethod
    def _webhook_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("notify_webhook_url") is not None:
            raise ValueError("set this or ECS_MEDIC_NOTIFY_WEBHOOK_URL, not both")
        return _arn_of(value, "secretsmanager", "a Secrets Manager secret ARN (arn:aws:secretsmanager:...)")

    @field_validator("notify_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip().startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL")  # the value itself is a credential: never repeated
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

    @field_validator("log_format", "log_level", "lease_table", "events_queue_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """Every environment variable a setting is read from."""
        return tuple(ENV_PREFIX + name.upper() for name in cls.model_fields)


def _arn_of(value: str | None, service: str, expected: str) -> str | None:
    if value is None:
        return None
    parts = value.strip().split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != service or not parts[5]:
        raise ValueError(f"must be {expected}, got {value!r}")
    if service == "sns" and value.strip().endswith(".fifo"):
        raise ValueError("must be a standard SNS topic: a FIFO topic needs a message group for every message")
    return value.strip()


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """`ECS_MEDIC_*` variables no setting reads, each with the closest setting's name (a likely typo)."""
    known = Settings.variables()
    found = []
    for name in sorted(environ if environ is not None else os.environ):
        if name.startswith(ENV_PREFIX) and name not in known and name not in _NOT_SETTINGS:
            # Compared without the shared prefix, which would make every name look alike.
            suffixes = {variable.removeprefix(ENV_PREFIX): variable for variable in known}
            closest = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(suffixes), n=1, cutoff=0.6)
            found.append((name, suffixes[closest[0]] if closest else None))
    return found
