"""Settings, from `ECS_MEDIC_*` environment variables; a command-line flag overrides its variable.

AWS itself is configured the standard way (`AWS_REGION`, the credential chain, `AWS_ENDPOINT_URL`);
nothing here duplicates it. Names are flat (`ECS_MEDIC_MODE`, not nested) because operators type them.
Durations take the same forms as policies (`30s`, `5m`, `1h`) or plain seconds, and are bounded: a
setting that would break the agent is refused at start, naming the variable.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.policy.duration import parse_duration

ENV_PREFIX = "ECS_MEDIC_"
# Read by the repository's scripts, not by the agent: no warning for them.
_NOT_SETTINGS = frozenset({"ECS_MEDIC_TOOLS_DIR", "ECS_MEDIC_IMAGE_STATE", "ECS_MEDIC_IMAGE_SKIP_RUN"})

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

    @field_validator("clusters", mode="before")
    @classmethod
    def _split_clusters(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_format", "log_level", "lease_table", "events_queue_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """Every environment variable a setting is read from."""
        return tuple(ENV_PREFIX + name.upper() for name in cls.model_fields)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """`ECS_MEDIC_*` variables no setting reads, each with the closest setting's name (a likely typo)."""
    known = Settings.variables()
    found = []
    for name in sorted(environ if environ is not None else os.environ):
        if name.startswith(ENV_PREFIX) and name not in known and name not in _NOT_SETTINGS:
            closest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            found.append((name, closest[0] if closest else None))
    return found
