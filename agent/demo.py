"""`ecs-medic demo`: the agent against the embedded simulated ECS world, in simulated time.

The world breaks the way the chosen scenarios break; the agent, unchanged, talks to it over HTTP
exactly as it would talk to AWS, pass after pass, and the terminal shows what it sees, what it
proposes and, with --enforce, what it does and whether it worked. Metrics are served while it runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

import boto3

from agent import approvals, logs
from agent.aws import AwsGateway
from agent.decide import Outcome
from agent.metrics import Metrics
from agent.policy.watch import PolicySource
from agent.reconciler import PassReport, Reconciler
from agent.settings import LogFormat, Mode, Settings
from agent.sim import SCENARIOS, Scenario, World

if TYPE_CHECKING:
    from collections.abc import Sequence

MANAGED = "ecs-medic:managed"


def agent_for(
    world: World,
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    log: Any = None,  # noqa: ANN401 - a structlog logger
) -> Reconciler:
    """A reconciler wired to the world's endpoint, as `ecs-medic run` wires one to AWS."""
    environment = world.environment  # the world's fake credentials, as `sim serve` prints them
    session = boto3.session.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    )
    measured = metrics or Metrics()
    gateway = AwsGateway(
        dry_run=settings.mode is Mode.DRY_RUN,
        metrics=measured,
        session=session,
        endpoint_url=world.endpoint_url,
        # Simulated time runs faster than real time: the world's own throttling faults, not a
        # client-side budget tuned for AWS, are what tests and the demo exercise.
        rate_per_second=1000.0,
        burst=1000.0,
        sleep=lambda _seconds: None,
    )
    source = PolicySource(settings.policies)
    source.refresh()
    if settings.approval_key_id is None:
        settings = settings.model_copy(update={"approval_key_id": world.approval_key_id})
    return Reconciler(
        aws=gateway,
        settings=settings,
        policies=source.policies,
        metrics=measured,
        log=log or logs.logger(),
        identity=str(gateway.call("sts", "GetCallerIdentity", {})["Arn"]),
    )


def manage(world: World, scenarios: Sequence[Scenario]) -> None:
    """Tag each scenario's services `ecs-medic:managed=true`, as an operator opting them in would."""
    ecs = world.client("ecs")
    for scenario in scenarios:
        for service in scenario.services:
            arn = world.describe_service(scenario.cluster, service)["serviceArn"]
            ecs.tag_resource(resourceArn=arn, tags=[{"key": MANAGED, "value": "true"}])


@dataclass
class _Story:
    """What happened to one scenario's services, for the closing table."""

    scenario: str
    services: tuple[tuple[str, str], ...]
    causes: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    actions: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    healed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    left_to_person: dict[tuple[str, str], str] = field(default_factory=dict)  # why the agent did not act
    final: dict[tuple[str, str], str] = field(default_factory=dict)
    shown: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # last (proposal, status) printed

    def settled(self) -> bool:
        return all(
            key in self.healed_at or key in self.left_to_person or not self.causes.get(key) for key in self.services
        )


def _clock(seconds: float) -> str:
    return f"+{int(seconds // 60):02d}m{int(seconds % 60):02d}s"


def _show_pass(report: PassReport, elapsed: float, story: _Story, out: TextIO) -> None:
    failing = {(f.cluster, f.service) for f in report.findings if f.failure}
    out.write(
        f"\n[{_clock(elapsed)}] pass: {report.services} services, {len(failing)} with failures, "
        f"{len(report.proposals)} proposals, {report.aws_calls} AWS calls\n"
    )
    for cluster, reason in sorted(report.paused_clusters.items()):
        out.write(f"  PAUSED    {cluster}: {reason}\n")
    for finding in report.findings:
        key = (finding.cluster, finding.service or "")
        if finding.failure and finding.cause.value not in story.causes.setdefault(key, set()):
            story.causes[key].add(finding.cause.value)
            out.write(f"  FINDING   {key[0]}/{key[1]}: {finding.cause.value}: {finding.summary}\n")
    for proposal in report.proposals:
        key = (proposal.cluster, proposal.service)
        if proposal.outcome in (Outcome.APPLIED, Outcome.FAILED):
            story.actions.setdefault(key, []).append(proposal.action)
        prevention = proposal.cause in (
            "circuit_breaker_disabled",
            "mutable_image_tag",
            "no_grace_period_behind_load_balancer",
        )
        if proposal.action == "notify" and proposal.outcome is Outcome.APPLIED and not prevention:
            story.left_to_person[key] = "notified: a person applies the fix"
        elif proposal.outcome is Outcome.PROPOSED and proposal.reason.startswith("enforcement paused"):
            story.left_to_person[key] = proposal.reason
        if proposal.action == "notify" and prevention:
            continue  # prevention advice: in the closing table, not in every pass
        if story.shown.get(key) == (proposal.id, proposal.outcome.value):
            continue  # said already: the demo shows changes, not every pass's repeat
        story.shown[key] = (proposal.id, proposal.outcome.value)
        status = proposal.outcome.value.upper()
        out.write(f"  {status:<9} {key[0]}/{key[1]}: {proposal.action}: {proposal.plan.summary}\n")
        if proposal.outcome in (Outcome.PROPOSED, Outcome.AWAITING_APPROVAL) and proposal.plan.commands:
            command = proposal.plan.commands[0]
            out.write(f"{' ' * 12}$ {command if len(command) < 160 else command[:157] + '...'}\n")
        if proposal.reason and proposal.outcome is not Outcome.PROPOSED:
            out.write(f"{' ' * 12}{proposal.reason}\n")
    for cluster, service, action, verdict in report.verifications:
        out.write(f"  {verdict.value.upper():<9} {cluster}/{service}: {action}\n")


def _approve_waiting(world: World, report: PassReport, out: TextIO) -> None:
    """Approve what waits for a person, as `ecs-medic approve ID` would (the demo plays the operator)."""
    approver = approver_gateway(world)
    for proposal in report.proposals:
        if proposal.outcome is Outcome.AWAITING_APPROVAL:
            approve(world, approver, proposal.service_arn, proposal.id, report.finished_at)
            out.write(f"  OPERATOR  {proposal.cluster}/{proposal.service}: ecs-medic approve {proposal.id}\n")


def approver_gateway(world: World) -> AwsGateway:
    """The AWS gateway of a person who assumed the world's approver role."""
    return AwsGateway(
        dry_run=False, metrics=Metrics(), session=world.approver_session(), endpoint_url=world.endpoint_url
    )


def approve(world: World, approver: AwsGateway, service_arn: str, proposal_id: str, now: datetime) -> None:
    described = approver.call(
        "ecs",
        "DescribeServices",
        {"cluster": service_arn.split("/")[-2], "services": [service_arn], "include": ["TAGS"]},
    )
    tags = {t["key"]: t["value"] for service in described.get("services") or [] for t in service.get("tags") or []}
    approvals.grant(
        approver,
        key_id=world.approval_key_id,
        service_arn=service_arn,
        tags=tags,
        proposal_id=proposal_id,
        now=now,
        ttl=timedelta(hours=1),
    )


def run_demo(
    names: Sequence[str],
    *,
    enforce: bool,
    out: TextIO,
    minutes: float = 40.0,
    port: int | None = None,
    interval_seconds: float = 30.0,
) -> int:
    """Run each named scenario (all when none) in its own world with the agent; print the story.

    Returns 0 when every failing service was healed, or deliberately left to a person (a notify, a
    pause); 1 otherwise.
    """
    from agent.http import Health, StatusServer  # noqa: PLC0415

    chosen = [SCENARIOS[name] for name in names] if names else list(SCENARIOS.values())
    mode = Mode.ENFORCE if enforce else Mode.DRY_RUN
    logs.configure(LogFormat.JSON, stream=io.StringIO())  # the story below is the output; JSON logs go nowhere
    metrics = Metrics()
    latest: list[dict[str, Any]] = []
    health = Health(max_pass_age_seconds=3600.0, proposals=lambda: latest)
    server = StatusServer(metrics, health, port, host="127.0.0.1").start() if port is not None else None
    out.write(
        f"ecs-medic {mode.value}, against the simulated ECS world, one pass every {interval_seconds:.0f} "
        "simulated seconds" + (f"; metrics on http://127.0.0.1:{server.port}/metrics" if server else "") + "\n"
    )
    stories = []
    try:
        for scenario in chosen:
            settings = Settings(mode=mode, poll_interval_seconds=interval_seconds, metrics_port=port or 0)
            stories.append(
                _run_scenario(
                    scenario, settings=settings, metrics=metrics, health=health, latest=latest, minutes=minutes, out=out
                )
            )
    finally:
        if server is not None:
            server.stop()
    return _summary(stories, enforce, out)


def _run_scenario(
    scenario: Scenario,
    *,
    settings: Settings,
    metrics: Metrics,
    health: Any,  # noqa: ANN401 - agent.http.Health
    latest: list[dict[str, Any]],
    minutes: float,
    out: TextIO,
) -> _Story:
    enforce = settings.mode is Mode.ENFORCE
    out.write(f"\n=== {scenario.name}: {scenario.title}\n    symptom: {scenario.symptom}\n")
    with World.start(seed=7) as world:
        scenario.setup(world)
        manage(world, [scenario])
        reconciler = agent_for(world, settings, metrics=metrics)
        story = _Story(scenario.name, tuple((scenario.cluster, service) for service in scenario.services))
        elapsed = 0.0
        while elapsed < minutes * 60:
            report = reconciler.run_pass(world.now)
            latest[:] = [p.to_dict() for p in report.proposals]
            health.pass_finished()
            _show_pass(report, elapsed, story, out)
            if enforce:
                _approve_waiting(world, report, out)
            for key in story.services:
                if key not in story.healed_at and story.causes.get(key) and world.service_state(*key).steady:
                    story.healed_at[key] = elapsed
            if enforce and story.settled():
                break
            world.advance(settings.poll_interval_seconds)
            elapsed += settings.poll_interval_seconds
        for key in story.services:
            state = world.service_state(*key)
            story.final[key] = "steady" if state.steady else f"{state.running}/{state.desired} running"
    return story


def _summary(stories: Sequence[_Story], enforce: bool, out: TextIO) -> int:
    out.write("\n")
    unhealed = 0
    for story in stories:
        for key in story.services:
            causes = ",".join(sorted(story.causes.get(key, set()))) or "-"
            actions = ",".join(dict.fromkeys(story.actions.get(key, []))) or ("-" if enforce else "(dry-run)")
            now = story.final[key]
            if key in story.healed_at:
                now += f" (healed at {_clock(story.healed_at[key])})"
            elif now != "steady" and key in story.left_to_person:
                now += f" ({story.left_to_person[key]})"
            elif now != "steady":
                unhealed += 1
            out.write(f"{key[0]}/{key[1]} ({story.scenario})\n    diagnosis: {causes}\n    actions:   {actions}\n")
            out.write(f"    now:       {now}\n")
    if not enforce:
        out.write("\nDry-run: nothing was changed. Run with --enforce to let the agent apply what it proposed.\n")
        return 0
    total = sum(len(story.services) for story in stories)
    out.write(f"\n{total - unhealed} of {total} services healed, or left to a person by design.\n")
    return 0 if unhealed == 0 else 1


def list_scenarios(out: TextIO) -> int:
    for scenario in SCENARIOS.values():
        cause = scenario.expected_cause.value if scenario.expected_cause else "none"
        out.write(f"{scenario.name:<30}{scenario.title}\n{'':<30}symptom: {scenario.symptom}\n")
        out.write(f"{'':<30}diagnosis: {cause}; operator fix: {scenario.operator_fix}\n")
    return 0
