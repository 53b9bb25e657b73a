"""Event mode against the world: ECS's events through EventBridge and SQS add service keys to a work
queue; keys are reconciled with targeted reads, retried with per-key backoff, and their messages deleted
only once handled; a periodic resync lists everything behind the events; evidence outlives ECS's hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import structlog

from agent.arns import ServiceKey
from agent.decide import Outcome
from agent.evidence import MemoryEvidence
from agent.loop import EventFeed, Worker
from agent.settings import Mode
from agent.sim import SCENARIOS, AppProfile, DeliveryProfile, World
from agent.workqueue import LOW
from tests.e2e.conftest import Run, carried_out, policies_where, prepare, start_agent


@dataclass
class Events:
    """An agent in event mode against the world, driven in simulated time (no threads)."""

    world: World
    run: Run
    worker: Worker
    feed: EventFeed

    def drive(self, seconds: float, *, step: float = 5.0) -> None:
        """The world moves on; the agent reads its queue and works off every ready key, as its threads
        would, and resyncs when due."""
        elapsed = 0.0
        while elapsed < seconds:
            self.world.advance(step)
            elapsed += step
            while self.feed.poll():
                pass
            if self.worker.resync_due(self.world.now):
                self.worker.resync(self.world.now)
            while self.worker.work_once():
                pass

    def key(self, cluster: str, service: str) -> ServiceKey:
        return ServiceKey(self.world.account_id, self.world.region, cluster, service)

    def ops(self) -> list[str]:
        return [r.operation for r in self.world.requests.all()]


def event_agent(world: World, mode: Mode = Mode.ENFORCE, **settings: object) -> Events:
    url = world.events_queue_url or world.configure_events_queue()
    run = start_agent(world, mode, **settings)
    evidence = MemoryEvidence()
    run.reconciler.evidence = evidence
    log = structlog.get_logger()
    worker = Worker(
        run.reconciler,
        world.account_id,
        world.region,
        log,
        now=lambda: world.now,
        settle_seconds=30,
        resync_seconds=600,
    )
    feed = EventFeed(
        run.reconciler.aws,
        url,
        {(world.account_id, world.region): worker},
        log,
        delete=mode is Mode.ENFORCE,
        evidence=evidence,
        wait_seconds=0,
    )
    worker.feed = feed
    return Events(world, run, worker, feed)


def healthy_worker(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("worker", "v1")
    world.add_service("prod", "worker", image="worker:v1", load_balanced=False, tags={"ecs-medic:managed": "true"})
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", load_balanced=False, tags={"ecs-medic:managed": "true"})
    world.advance(300)


def break_worker(world: World) -> None:
    world.push_image("worker", "v2", AppProfile.crashing("boom", after_seconds=3))
    world.deploy("prod", "worker", image="worker:v2")


@pytest.fixture
def events(world: World) -> Events:
    world.configure_events_queue()
    healthy_worker(world)
    agent = event_agent(world)
    agent.worker.start(None)  # the first resync: one full pass
    world.requests.clear()
    return agent


def test_a_failed_deploy_is_fixed_from_its_events_without_a_full_pass(events):
    break_worker(events.world)
    events.drive(90)
    assert carried_out(events.world, "UpdateService") == 1, "rolled back once"
    assert events.world.service_state("prod", "worker").task_definition.endswith("worker:1")
    ops = events.ops()
    assert "ListServices" not in ops, "no service was listed: the events named it"
    assert "ListClusters" not in ops
    assert all(p.service == "worker" for p in events.run.reconciler.latest if p.plan.mutates)


def test_a_stopped_task_in_an_event_is_diagnosed_from_the_event_alone(events):
    break_worker(events.world)
    events.world.advance_until(lambda: bool(events.world.stopped_tasks("prod", "worker")), within=120)
    events.world.advance(5)
    events.world.requests.clear()
    while events.feed.poll():
        pass
    assert events.worker.work_once() >= 1
    ops = events.ops()
    assert "DescribeServices" in ops
    assert "ListTasks" not in ops and "DescribeTasks" not in ops, "the event carried the stopped task"
    findings = events.run.metrics.registry.get_sample_value(
        "ecs_medic_findings_total", {"cluster": "prod", "service": "worker", "cause": "app_crash"}
    )
    assert findings is not None and findings >= 1
    latency = events.run.metrics.registry.get_sample_value("ecs_medic_detection_latency_seconds_count")
    assert latency is not None and latency >= 1


def test_messages_are_deleted_only_once_their_key_was_handled(events):
    break_worker(events.world)
    events.world.advance_until(lambda: bool(events.world.stopped_tasks("prod", "worker")), within=120)
    events.world.advance(5)
    events.world.faults.add(operation="DescribeServices", kind="server_error")
    while events.feed.poll():  # messages about tasks starting are deleted at once: nothing to do for them
        pass
    held = events.feed.intake.pending
    assert held > 0
    events.world.requests.clear()
    events.worker.work_once()
    assert "DeleteMessageBatch" not in events.ops(), "the key failed: its messages wait"
    key = events.key("prod", "worker")
    assert events.worker.queue.retries(key) == 1
    assert events.feed.intake.pending == held
    assert events.worker.work_once() == 0, "it comes back after its backoff, not at once"
    events.world.faults.clear()
    events.drive(5)
    assert "DeleteMessageBatch" in events.ops()
    assert events.worker.queue.retries(key) == 0, "a success forgets the backoff"


def test_a_failing_key_backs_off_on_its_own(events):
    events.world.faults.add(operation="DescribeServices", kind="server_error")
    key = events.key("prod", "worker")
    delays = []
    for _ in range(4):
        events.worker.queue.add(key)  # an event for it, again and again: it still fails
        events.worker.work_once()
        delays.append(events.worker.queue.retries(key))
    assert delays == [1, 2, 3, 4]
    assert events.worker.queue.waiting == 1, "delayed by its backoff"
    assert events.worker.queue.retries(events.key("prod", "web")) == 0, "the other key has no backoff"


def test_the_resync_queues_every_service_behind_the_events(events):
    assert events.worker.resync(events.world.now) == 2
    assert {"ListClusters", "ListServices"} <= set(events.ops())
    urgent = events.key("prod", "web")
    events.worker.queue.add(urgent)  # an event after the resync queued everything
    first = events.worker.queue.get_batch(10, group=lambda k: k.cluster, timeout=0)
    assert first == [urgent], "the event's key goes first, alone at its priority"
    events.worker.queue.done(urgent)
    rest = events.worker.queue.get_batch(10, group=lambda k: k.cluster, timeout=0)
    assert rest == [events.key("prod", "worker")]
    assert LOW < 0


def test_a_resync_batch_reads_ten_services_with_one_describe(world):
    world.configure_events_queue()
    world.add_fargate_cluster("prod")
    world.push_image("app", "v1")
    for index in range(12):
        world.add_service("prod", f"app-{index:02d}", image="app:v1", load_balanced=False)
    world.advance(200)
    agent = event_agent(world, Mode.DRY_RUN)
    agent.worker.start(None)
    world.requests.clear()
    agent.worker.resync(world.now)
    while agent.worker.work_once():
        pass
    assert agent.ops().count("DescribeServices") == 2
    assert agent.run.metrics.registry.get_sample_value("ecs_medic_services_observed", {"cluster": "prod"}) == 12


def test_an_unsettled_service_is_looked_at_again_until_its_change_is_verified(events):
    break_worker(events.world)
    events.drive(90)
    assert carried_out(events.world, "UpdateService") == 1
    events.drive(300)
    verified = events.run.metrics.registry.get_sample_value(
        "ecs_medic_remediations_total",
        {
            "cluster": "prod",
            "service": "worker",
            "policy": "rollback-bad-deploy",
            "action": "rollback_task_definition",
            "outcome": "verified",
        },
    )
    assert verified == 1, "judged without a resync: the unsettled service kept coming back"
    assert "ListServices" not in events.ops()


def test_in_dry_run_the_queue_is_read_and_never_written(world):
    world.configure_events_queue()
    healthy_worker(world)
    agent = event_agent(world, Mode.DRY_RUN)
    agent.worker.start(None)
    world.requests.clear()
    break_worker(world)
    agent.drive(60)
    assert world.requests.mutating() == []
    assert any(p.outcome is Outcome.PROPOSED for p in agent.run.reconciler.latest)


def test_duplicate_and_late_events_change_nothing(world):
    world.configure_events_queue()
    world.event_delivery(DeliveryProfile(min_delay=0.3, max_delay=8, late_rate=0.3, late_delay=30, duplicate_rate=0.5))
    healthy_worker(world)
    agent = event_agent(world)
    agent.worker.start(None)
    break_worker(world)
    agent.drive(240)
    assert world.delivery.duplicated > 0
    assert carried_out(world, "UpdateService") == 1


def test_a_storm_seen_by_the_full_pass_pauses_a_batch_of_that_cluster(world):
    world.configure_events_queue()
    prepare(world, SCENARIOS["storm"])
    agent = event_agent(world)
    first = agent.worker.start(None)
    assert first is not None and first.paused_clusters
    cluster = SCENARIOS["storm"].cluster
    service = SCENARIOS["storm"].services[0]
    report = agent.run.reconciler.run_batch(cluster, [service], world.now)
    assert report.services == 1
    assert cluster in report.paused_clusters, "the census counts the rest of the cluster"
    assert all(p.outcome is not Outcome.APPLIED for p in report.proposals)
    assert carried_out(world, "UpdateService") == 0


def test_three_oom_kills_in_two_hours_count_after_ecs_forgot_the_first(world, tmp_path):
    policies = policies_where(
        tmp_path / "policies",
        raise_memory_on_oom=("occurrences: 2\n    within: 30m", "occurrences: 3\n    within: 2h"),
    )
    world.configure_events_queue()
    world.add_fargate_cluster("prod")
    # A leak: each task is OOM-killed about 40 minutes after it starts.
    world.push_image("ranker", "v1", AppProfile(peak_memory_mib=200, leak_mib_per_second=0.13))
    world.add_service(
        "prod",
        "ranker",
        image="ranker:v1",
        desired_count=1,
        memory=512,
        container_memory=512,
        load_balanced=False,
        tags={"ecs-medic:managed": "true"},
    )
    world.advance(60)
    agent = event_agent(world, policies=policies)
    agent.worker.start(None)
    waiting = []
    for _ in range(30):
        agent.drive(300, step=10)
        waiting = [p for p in agent.run.reconciler.latest if p.action == "raise_memory"]
        if waiting:
            break
    assert waiting, "the third OOM in two hours is counted"
    assert waiting[0].outcome is Outcome.AWAITING_APPROVAL
    shown = [t for t in world.stopped_tasks("prod", "ranker") if "OutOfMemory" in str(t)]
    assert len(shown) < 3, "ECS itself no longer shows all three"


def test_the_evidence_window_is_the_longest_policy_window(world, tmp_path):
    policies = policies_where(
        tmp_path / "policies",
        raise_memory_on_oom=("occurrences: 2\n    within: 30m", "occurrences: 3\n    within: 3h"),
    )
    agent = event_agent(world, Mode.DRY_RUN, policies=policies)
    agent.run.reconciler.run_pass(world.now)
    assert agent.run.reconciler._observer.evidence_window == timedelta(hours=3)
