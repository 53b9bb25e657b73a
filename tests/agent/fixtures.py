"""Services as the agent sees them, built from the same API-shaped objects the diagnosis tests use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.decide import Assessment, Limits
from agent.model import ServiceView
from agent.policy.loader import PolicySet, load_policies, parse_policies
from agent.reconciler import assess
from agent.settings import Mode
from agent.state import ServiceState, decode_tags

NOW = datetime(2026, 4, 19, 3, 15, tzinfo=UTC)
BUNDLED = load_policies(Path(__file__).resolve().parents[2] / "policies")


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def view(
    description: dict[str, Any],
    *,
    stopped: list[dict[str, Any]] | None = None,
    tags: dict[str, str] | None = None,
    managed: bool = True,
    definitions: dict[str, dict[str, Any]] | None = None,
    paused: str | None = None,
    providers: tuple[dict[str, Any], ...] = (),
    groups: dict[str, dict[str, Any]] | None = None,
) -> ServiceView:
    all_tags = {"ecs-medic:managed": "true"} if managed else {}
    all_tags.update(tags or {})
    return ServiceView(
        cluster="prod",
        name=description["serviceName"],
        description=description,
        tags=all_tags,
        stopped_tasks=tuple(stopped or ()),
        task_definitions=definitions or {},
        capacity_providers=providers,
        auto_scaling_groups=groups or {},
        cluster_paused=paused,
    )


def assessment(service_view: ServiceView, state: ServiceState | None = None) -> Assessment:
    remembered = state if state is not None else decode_tags(service_view.tags, NOW)[0]
    return assess(service_view, remembered, "us-east-1")


def limits(**overrides: Any) -> Limits:
    values: dict[str, Any] = {
        "mode": Mode.ENFORCE,
        "max_actions_per_hour": 20,
        "storm_fraction": 0.5,
        "storm_min_failing": 3,
        "paused": False,
        "managed_tag": "ecs-medic:managed",
        "verify_timeout_seconds": 600.0,
    }
    values.update(overrides)
    return Limits(**values)


def policies(text: str) -> PolicySet:
    loaded, errors = parse_policies(text, "test.yaml")
    assert not errors, errors
    return PolicySet(tuple(loaded), ("test.yaml",))
