"""`ecs-medic demo`: the agent against the embedded simulated ECS world, in simulated time.

The world breaks the way the chosen scenarios break; the agent, unchanged, talks to it over HTTP
exactly as it would talk to AWS, pass after pass, and the terminal shows what it sees, what it
proposes and, with --enforce, what it does and whether it worked. Metrics are served while it runs.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

import boto3

from agent import approvals, logs
from agent.aws import AwsGateway
from agent.decide import Kind, Outcome, Proposal
from agent.metrics import Metrics
from agent.model import Risk
from agent.notify import Notification, Notifier
from agent.policy.watch import PolicySource
from agent.reconciler import Reconciler
from agent.report import plural, printable
from agent.settings import LogFormat, Mode, Settings
from agent.sim import SCENARIOS, Scenario, World
from agent.telemetry import PassReport

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent.timeline import Timeline

MANAGED = "ecs-medic:managed"
PREVENTION = frozenset(risk.value for risk in Risk)
QUIET_PASSES = 10  # a dry-run scenario ends after 5 simulated minutes in which nothing new happened


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
    reconciler = Reconciler(
        aws=gateway, settings=settings, policies=source.policies, metrics=measured, log=log or logs.logger()
    )
    try:
        reconciler.identity = str(gateway.call("sts", "GetCallerIdentity", {})["Arn"])
    except Exception:  # noqa: BLE001 - a world that is not answering: approvals are still checked by signature
        reconciler.identity = None
    return reconciler


def shorten_cooldowns(reconciler: Reconciler, seconds: float) -> None:
    """Every policy's cooldown set to `seconds`, so that an episode moves on as soon as a verdict allows:
    how fast a ladder can climb when no cooldown holds it."""
    bundled = reconciler.policies()
    short = replace(
        bundled,
        policies=tuple(
            replace(
                p, policy=p.policy.model_copy(update={"spec": p.policy.spec.model_copy(update={"cooldown": seconds})})
            )
            for p in bundled.policies
        ),
    )
    reconciler.policies = lambda: short


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
    proposed: set[tuple[str, str]] = field(default_factory=set)  # services with a proposal for their failure
    paused: dict[str, str] = field(default_factory=dict)  # cluster -> reason, as last printed
    quiet_passes: int = 0  # passes in a row that changed nothing in the story
    judging: set[tuple[str, str]] = field(default_factory=set)  # services whose last change awaits its verdict

    def settled(self, *, enforce: bool) -> bool:
        """Enforcing: every failing service healed or left to a person, and every change judged. Dry-run:
        every failing service has its proposal and the story has not changed for `QUIET_PASSES` passes."""
        if enforce:
            return not self.judging and all(
                key in self.healed_at or key in self.left_to_person or not self.causes.get(key) for key in self.services
            )
        return self.quiet_passes >= QUIET_PASSES and all(
            key in self.proposed or key in self.left_to_person or not self.causes.get(key) for key in self.services
        )


def _clock(seconds: float) -> str:
    return f"+{int(seconds // 60):02d}m{int(seconds % 60):02d}s"


def _proposal_lines(proposal: Proposal, story: _Story, *, verbose: bool) -> list[str]:
    key = (proposal.cluster, proposal.service)
    prevention = proposal.cause in PREVENTION
    if proposal.outcome in (Outcome.APPLIED, Outcome.FAILED, Outcome.REVERTED) and not prevention:
        story.actions.setdefault(key, []).append(
            "undo " + proposal.action if proposal.kind is Kind.REVERT else proposal.action
        )
    if proposal.action == "notify" and proposal.outcome is Outcome.APPLIED and not prevention:
        story.left_to_person[key] = "notified: a person applies the fix"
    elif proposal.outcome is Outcome.PROPOSED and proposal.reason.startswith("enforcement paused"):
        story.left_to_person[key] = proposal.reason
    if proposal.action == "notify" and prevention:
        return []  # prevention advice: in the closing table, not in every pass
    story.proposed.add(key)
    if not verbose and story.shown.get(key) == (proposal.id, proposal.outcome.value):
        return []  # said already: the demo shows changes, not every pass's repeat
    story.shown[key] = (proposal.id, proposal.outcome.value)
    status = proposal.outcome.value.upper()
    lines = [f"  {status:<9} {key[0]}/{key[1]}: {proposal.action}: {printable(proposal.plan.summary)}\n"]
    if proposal.outcome in (Outcome.PROPOSED, Outcome.AWAITING_APPROVAL) and proposal.plan.commands:
        command = printable(proposal.plan.commands[0])
        lines.append(f"{' ' * 12}$ {command if len(command) < 160 else command[:157] + '...'}\n")
    if proposal.reason and proposal.outcome is not Outcome.PROPOSED:
        lines.append(f"{' ' * 12}{printable(proposal.reason)}\n")
    return lines


def _show_pass(report: PassReport, elapsed: float, story: _Story, out: TextIO, *, verbose: bool) -> bool:
    """Print what this pass changed in the story (every pass with `verbose`); True when it printed."""
    lines: list[str] = []
    for cluster, reason in sorted(report.paused_clusters.items()):
        if verbose or story.paused.get(cluster) != reason:
            lines.append(f"  PAUSED    {cluster}: {reason}\n")
    story.paused = dict(report.paused_clusters)
    for finding in report.findings:
        key = (finding.cluster, finding.service or "")
        if finding.failure and finding.cause.value not in story.causes.setdefault(key, set()):
            story.causes[key].add(finding.cause.value)
            lines.append(f"  FINDING   {key[0]}/{key[1]}: {finding.cause.value}: {printable(finding.summary)}\n")
    for proposal in report.proposals:
        lines += _proposal_lines(proposal, story, verbose=verbose)
        if proposal.outcome is Outcome.APPLIED and proposal.plan.mutates:
            story.judging.add((proposal.cluster, proposal.service))
    for cluster, service, action, verdict in report.verifications:
        story.judging.discard((cluster, service))
        lines.append(f"  {verdict.value.upper():<9} {cluster}/{service}: {action}\n")
    if not lines and not verbose:
        return False
    failing = {(f.cluster, f.service) for f in report.findings if f.failure}
    out.write(
        f"\n[{_clock(elapsed)}] pass: {plural(report.services, 'service')}, {len(failing)} with failures, "
        f"{plural(len(report.proposals), 'proposal')}, {plural(report.aws_calls, 'AWS call')}\n"
    )
    out.writelines(lines)
    return True


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
    verbose: bool = False,
    timeline: Timeline | None = None,
) -> int:
    """Run each named scenario (all when none) in its own world with the agent; print the story.

    Each pass that changed something is shown (every pass with `verbose`); `timeline` records them all.
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
            watch = _Watch(metrics=metrics, health=health, latest=latest, verbose=verbose, timeline=timeline)
            stories.append(_run_scenario(scenario, settings=settings, watch=watch, minutes=minutes, out=out))
    finally:
        if server is not None:
            server.stop()
    return _summary(stories, enforce, out)


@dataclass
class _Watch:
    """What a scenario's passes report to: metrics, probes, /proposals, and the timeline if asked."""

    metrics: Metrics
    health: Any  # agent.http.Health
    latest: list[dict[str, Any]]
    verbose: bool
    timeline: Timeline | None


def _run_scenario(scenario: Scenario, *, settings: Settings, watch: _Watch, minutes: float, out: TextIO) -> _Story:
    enforce = settings.mode is Mode.ENFORCE
    out.write(f"\n=== {scenario.name}: {scenario.title}\n    symptom: {scenario.symptom}\n")
    with World.start(seed=7) as world:
        scenario.setup(world)
        manage(world, [scenario])
        reconciler = agent_for(world, settings, metrics=watch.metrics)
        sent = _NotificationLines()
        notifier = Notifier([sent], metrics=watch.metrics, log=logs.logger(), ledger=reconciler.ledger)
        reconciler.notifier = notifier
        story = _Story(scenario.name, tuple((scenario.cluster, service) for service in scenario.services))
        elapsed = 0.0
        while elapsed < minutes * 60:
            report = reconciler.run_pass(world.now)
            watch.latest[:] = [p.to_dict() for p in report.proposals]
            watch.health.pass_finished(report.result)
            printed = _show_pass(report, elapsed, story, out, verbose=watch.verbose)
            notifier.flush(10)
            printed = sent.show(out) or printed  # the notifications this pass sent, right under it
            if enforce:
                _approve_waiting(world, report, out)
            steady = {key: world.service_state(*key).steady for key in story.services}
            if watch.timeline is not None:
                watch.timeline.record(report, healthy=steady, group=scenario.name)
            for key in story.services:
                if key not in story.healed_at and story.causes.get(key) and steady[key]:
                    story.healed_at[key] = elapsed
            story.quiet_passes = 0 if printed else story.quiet_passes + 1
            if story.settled(enforce=enforce):
                break
            world.advance(settings.poll_interval_seconds)
            elapsed += settings.poll_interval_seconds
        for key in story.services:
            state = world.service_state(*key)
            story.final[key] = "steady" if state.steady else f"{state.running}/{state.desired} running"
        notifier.close(10)
    return story


class _NotificationLines:
    """A notification channel for the demo: one line per notification, where the story is told.
    (With ECS_MEDIC_NOTIFY_* set, `ecs-medic run` sends the same notifications to SNS or a webhook.)"""

    name = "demo"

    def __init__(self) -> None:
        self._lines: list[str] = []

    def send(self, notification: Notification) -> None:
        what = notification.kind.value + (f" {notification.verdict.value}" if notification.verdict else "")
        self._lines.append(
            f"  NOTIFY    {notification.subject}: {what}: {notification.summary or notification.reason}\n"
        )

    def show(self, out: TextIO) -> bool:
        lines, self._lines = self._lines, []
        out.writelines(lines)
        return bool(lines)

    def close(self) -> None:
        """The stream is the demo's."""


def _summary(stories: Sequence[_Story], enforce: bool, out: TextIO) -> int:
    out.write("\n")
    unhealed = 0
    for story in stories:
        for key in story.services:
            causes = ",".join(sorted(story.causes.get(key, set()))) or "-"
            done = Counter(story.actions.get(key, []))
            actions = ", ".join(f"{a} x{n}" if n > 1 else a for a, n in done.items()) or (
                "-" if enforce else "(dry-run)"
            )
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
