"""A stable digest of everything a client could change, so a test can assert "the world is unchanged".

It covers configuration, not runtime: services (task definition, desired count, grace period,
deployment configuration, tags, load balancers, capacity provider strategy), task definitions, Auto
Scaling group sizes, capacity providers and the clusters' providers, IAM roles' policies, ECR tags and
target-group health-check settings. Tasks, events and deployments are the world's own doing and are
left out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agent.sim import moto_bridge as bridge


@dataclass(frozen=True, slots=True)
class Fingerprint:
    state: dict[str, Any]
    digest: str

    def diff(self, other: Fingerprint) -> list[str]:
        """Dotted paths whose values differ between two fingerprints (empty when equal)."""
        return sorted(_diff(self.state, other.state, ""))


def _diff(a: object, b: object, path: str) -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return {p for key in keys for p in _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))}
    return set() if a == b else {path}


def take(region: str) -> Fingerprint:
    services = {}
    for config in bridge.service_configs(region):
        services[f"{config.cluster}/{config.name}"] = {
            "status": config.status,
            "taskDefinition": config.task_definition,
            "desiredCount": config.desired_count,
            "healthCheckGracePeriodSeconds": config.grace_period,
            "deploymentConfiguration": config.deployment_configuration,
            "loadBalancers": config.load_balancers,
            "capacityProviderStrategy": config.capacity_provider_strategy,
            "networkConfiguration": config.network_configuration,
            "tags": sorted((t.get("key", ""), t.get("value", "")) for t in config.tags),
        }
    state: dict[str, Any] = {
        "services": services,
        "taskDefinitions": {f"{td.family}:{td.revision}": td.raw for td in bridge.task_definitions(region)},
        "autoScalingGroups": {
            g.name: {"min": g.min_size, "max": g.max_size, "desired": g.desired}
            for g in bridge.auto_scaling_groups(region)
        },
        "capacityProviders": {p.name: p.managed_scaling for p in bridge.capacity_providers(region)},
        "clusterCapacityProviders": bridge.cluster_capacity_providers(region),
        "iamRoles": bridge.roles(region),
        "ecrTags": bridge.repositories(region),
        "targetGroups": {
            g.name: {
                "interval": g.interval_seconds,
                "timeout": g.timeout_seconds,
                "healthy": g.healthy_threshold,
                "unhealthy": g.unhealthy_threshold,
                "path": g.path,
                "deregistrationDelay": g.deregistration_delay,
            }
            for g in bridge.target_groups(region)
        },
    }
    canonical = json.loads(json.dumps(state, sort_keys=True, default=str))
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    return Fingerprint(state=canonical, digest=digest)
