"""REPORT: every Prometheus metric ecs-medic exports, in one place, on an injectable registry.

Names are the contract dashboards and alerts are written against. Label sets are bounded: clusters,
services and policies are the operator's own (finite) names, causes/actions/outcomes are enums.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# `*_created` series double the number of series and no dashboard or alert reads them (Prometheus
# handles counter resets itself). prometheus-client's own switch; it applies when samples are collected.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The agent's metrics. Tests pass their own registry and read samples back from it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.remediations = Counter(
            "ecs_medic_remediations_total",
            "Remediations by what became of them: proposed, awaiting_approval, applied, verified, not_effective, "
            "reverted, escalated, failed, skipped_cooldown, skipped_limit.",
            ["cluster", "service", "policy", "action", "outcome"],
            registry=r,
        )
        self.findings = Counter(
            "ecs_medic_findings_total",
            "Diagnosed findings (each ECS item counted once, when first seen), by root cause.",
            ["cluster", "service", "cause"],
            registry=r,
        )
        self.passes = Counter(
            "ecs_medic_reconcile_passes_total",
            "Reconcile passes by result: ok (every read succeeded), partial (some failed), error (nothing was read).",
            ["result"],
            registry=r,
        )
        self.pass_duration = Histogram(
            "ecs_medic_reconcile_duration_seconds",
            "Wall-clock duration of one reconcile pass.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.aws_calls = Counter(
            "ecs_medic_aws_calls_total",
            "AWS API calls by service, operation and outcome: ok, throttled, error, blocked (dry-run guard).",
            ["service", "operation", "outcome"],
            registry=r,
        )
        self.services_observed = Gauge(
            "ecs_medic_services_observed", "Services observed in the last pass.", ["cluster"], registry=r
        )
        self.unhealthy_services = Gauge(
            "ecs_medic_unhealthy_services",
            "Services not at steady state with failures diagnosed, in the last pass.",
            ["cluster"],
            registry=r,
        )
        self.pending_approvals = Gauge(
            "ecs_medic_pending_approvals", "Proposals waiting for `ecs-medic approve`.", registry=r
        )
        self.oldest_pending_approval = Gauge(
            "ecs_medic_oldest_pending_approval_seconds",
            "Age of the oldest proposal waiting for approval (0 when none).",
            registry=r,
        )
        self.enforcement_paused = Gauge(
            "ecs_medic_enforcement_paused",
            "1 when enforcement is paused in the cluster (pause switch, cluster tag or storm guard).",
            ["cluster"],
            registry=r,
        )
        self.last_pass = Gauge(
            "ecs_medic_last_pass_timestamp_seconds",
            "Unix time when the last pass that saw the fleet finished (a pass that could read nothing does not count).",
            registry=r,
        )
        self.service_errors = Counter(
            "ecs_medic_service_errors_total",
            "Errors confined to one service (the rest of the pass went on), by stage: assess, decide, act, "
            "recover, state.",
            ["cluster", "service", "stage"],
            registry=r,
        )
        self.is_leader = Gauge("ecs_medic_is_leader", "1 when this replica holds the lease and acts.", registry=r)
        self.notifications = Counter(
            "ecs_medic_notifications_total",
            "Notifications by channel (sns, webhook), event (approval_needed, proposed, applied, verdict, paused, "
            "resumed, fix_needed) and outcome: sent, retried (an attempt failed, another follows), failed (given "
            "up), dropped (not attempted: full queue or shutdown).",
            ["channel", "event", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "ecs_medic_queue_depth",
            "Service keys waiting in the work queue, ready to be reconciled (delayed keys count once due).",
            registry=r,
        )
        self.detection_latency = Histogram(
            "ecs_medic_detection_latency_seconds",
            "Seconds from a task stopping to the agent's finding about it (tasks that stopped while it watched).",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.shards_owned = Gauge(
            "ecs_medic_shards_owned",
            "Shards of the fleet whose lease this replica holds (with sharded replicas; see ECS_MEDIC_SHARDS).",
            registry=r,
        )
        self.target_up = Gauge(
            "ecs_medic_target_up",
            "1 when the agent's last read of an account and Region saw its fleet, 0 when it failed.",
            ["account", "region"],
            registry=r,
        )
        self.target_last_pass = Gauge(
            "ecs_medic_target_last_pass_timestamp_seconds",
            "Unix time when the agent last saw the fleet of an account and Region.",
            ["account", "region"],
            registry=r,
        )
        self.aws_budget_remaining = Gauge(
            "ecs_medic_aws_budget_remaining",
            "Tokens left in the agent's share of an ECS throttling bucket, per account, Region and bucket.",
            ["account", "region", "bucket"],
            registry=r,
        )
