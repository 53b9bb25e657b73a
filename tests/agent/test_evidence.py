"""Stopped-task evidence beyond ECS's hour: trimmed without changing a diagnosis, bounded in memory,
durable in DynamoDB with a TTL (against the simulated world's DynamoDB), and the two layered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from prometheus_client import CollectorRegistry

from agent.arns import ServiceKey
from agent.aws import AwsGateway
from agent.diagnose import diagnose_task
from agent.evidence import (
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
    DynamoEvidence,
    LayeredEvidence,
    MemoryEvidence,
    compact,
    evidence_store,
)
from agent.metrics import Metrics
from agent.model import Cause
from agent.report import finding_to_dict
from agent.settings import Settings
from agent.sim import AppExit, AppProfile, World
from tests.diagnose.corpus_report import task_for as corpus_task
from tests.sim.times import START

WEB = ServiceKey("123456789012", "us-east-1", "prod", "web")
API = ServiceKey("123456789012", "us-east-1", "prod", "api")
CORPUS = yaml.safe_load((Path(__file__).parents[1] / "diagnose" / "corpus.yaml").read_text(encoding="utf-8"))


def oom(task_id: str, minutes_after_start: float, *, service: str = "web", version: int = 5) -> dict[str, Any]:
    stopped = START + timedelta(minutes=minutes_after_start)
    return {
        "taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/prod/{task_id}",
        "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        "group": f"service:{service}",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "startedAt": stopped - timedelta(minutes=5),
        "stoppedAt": stopped,
        "version": version,
        "attachments": [{"id": "eni", "details": [{"name": "x", "value": "y" * 200}]}],
        "containers": [
            {
                "name": "app",
                "exitCode": 137,
                "reason": "OutOfMemoryError: Container killed due to memory usage",
                "lastStatus": "STOPPED",
                "networkInterfaces": [{"attachmentId": "eni", "privateIpv4Address": "10.0.0.1"}],
            }
        ],
    }


def same_diagnosis(task: dict[str, Any]) -> None:
    full, trimmed = diagnose_task(task), diagnose_task(compact(task))
    assert (full is None) == (trimmed is None)
    if full is not None and trimmed is not None:
        assert finding_to_dict(full) == finding_to_dict(trimmed)


@pytest.mark.parametrize(
    "entry", [e for e in CORPUS if e["where"] in {"stoppedReason", "containerReason"}], ids=lambda e: e["id"]
)
def test_trimming_a_task_never_changes_its_diagnosis(entry):
    same_diagnosis(corpus_task(entry))


def test_trimming_keeps_world_tasks_diagnosable_and_drops_the_bulk():
    with World.start(seed=4, start_time=START) as world:
        world.add_fargate_cluster("prod")
        world.push_image("web", "v1", AppProfile(exit=AppExit.CRASH, crash_after_seconds=20))
        world.add_service("prod", "web", image="web:v1", desired_count=2)
        world.advance(240)
        tasks = world.stopped_tasks("prod", "web")
    assert tasks
    for task in tasks:
        same_diagnosis(task)
        assert diagnose_task(compact(task)).cause is Cause.APP_CRASH  # type: ignore[union-attr]
        assert "attachments" not in compact(task) and "overrides" not in compact(task)
        assert len(repr(compact(task))) < len(repr(task)) / 2


def test_memory_answers_a_window_newest_first():
    store = MemoryEvidence()
    for index, minute in enumerate((10, 50, 130, 170)):
        store.record(WEB, oom(f"t{index}", minute))
    store.record(API, oom("other", 160, service="api"))
    found = store.recent(WEB, START + timedelta(minutes=50))
    assert [t["taskArn"].rsplit("/", 1)[-1] for t in found] == ["t3", "t2", "t1"]
    assert all(diagnose_task(t).cause is Cause.OOM for t in found)  # type: ignore[union-attr]
    assert store.recent(API, START) and store.recent(ServiceKey("1", "r", "c", "s"), START) == []


def test_a_task_seen_twice_is_kept_once_and_the_newer_version_wins():
    store = MemoryEvidence()
    store.record(WEB, oom("t1", 10, version=4))
    newer = oom("t1", 10, version=5)
    newer["containers"][0]["reason"] = "OutOfMemoryError: Container killed due to memory usage (v5)"
    store.record(WEB, newer)
    store.record(WEB, oom("t1", 10, version=3))  # a late, older copy
    [kept] = store.recent(WEB, START)
    assert kept["version"] == 5 and kept["containers"][0]["reason"].endswith("(v5)")
    assert len(store) == 1


def test_tasks_that_have_not_stopped_are_not_evidence():
    store = MemoryEvidence()
    running = oom("t1", 10)
    running.update(lastStatus="RUNNING", desiredStatus="RUNNING", stopCode=None)
    del running["stoppedAt"]
    store.record(WEB, running)
    assert len(store) == 0


def test_memory_is_bounded_per_service_and_in_total_oldest_out():
    store = MemoryEvidence(per_service=3, total=5)
    for minute in (30, 10, 40, 20):  # recorded out of order: the earliest stop goes first
        store.record(WEB, oom(f"w{minute}", minute))
    assert [t["taskArn"][-3:] for t in store.recent(WEB, START)] == ["w40", "w30", "w20"]
    assert store.complete_since(WEB) == START + timedelta(minutes=10)
    for minute in (5, 50, 60):
        store.record(API, oom(f"a{minute}", minute, service="api"))
    assert len(store) == 5
    remaining = {t["taskArn"][-3:] for key in (WEB, API) for t in store.recent(key, START)}
    assert remaining == {"w20", "w30", "w40", "a50", "a60"}, "the earliest stop of all went first"
    assert store.complete_since(API) == START + timedelta(minutes=5)


def test_memory_stays_bounded_under_churn():
    store = MemoryEvidence(per_service=5, total=200)
    for index in range(5000):
        store.record(ServiceKey("1", "r", "c", f"s{index % 97}"), oom(f"t{index}", index / 10, service="x"))
    assert len(store) == 200
    assert len(store._oldest) <= 2 * 200 + 64 + 1


def test_memory_rejects_nonsense_bounds():
    with pytest.raises(ValueError, match="at least 1"):
        MemoryEvidence(per_service=0)


# --- DynamoDB ------------------------------------------------------------------------------------------------


@pytest.fixture
def world() -> Iterator[World]:
    with World.start(seed=3, start_time=START) as started:
        started.client("dynamodb").create_table(
            TableName="ecs-medic-evidence",
            AttributeDefinitions=[
                {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
                {"AttributeName": SORT_KEY, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        started.client("dynamodb").update_time_to_live(
            TableName="ecs-medic-evidence",
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        yield started


def gateway(world: World, *, dry_run: bool = False, **options: Any) -> AwsGateway:
    env = world.environment
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    )
    return AwsGateway(
        dry_run=dry_run,
        metrics=Metrics(CollectorRegistry()),
        session=session,
        endpoint_url=world.endpoint_url,
        sleep=lambda _seconds: None,
        **options,
    )


def test_dynamodb_keeps_evidence_for_the_window_asked(world):
    now = [START + timedelta(hours=3)]
    store = DynamoEvidence(gateway(world), "ecs-medic-evidence", timedelta(hours=24), lambda: now[0])
    for index, minute in enumerate((10, 50, 130, 170)):
        store.record(WEB, oom(f"t{index}", minute))
    store.record(WEB, oom("t3", 170, version=6))  # the same task again: one item, the newer version
    store.record(API, oom("other", 160, service="api"))
    found = store.recent(WEB, START + timedelta(minutes=60))
    assert [t["taskArn"][-2:] for t in found] == ["t3", "t2"]
    assert found[0]["version"] == 6
    assert [diagnose_task(t).cause for t in found] == [Cause.OOM, Cause.OOM]  # type: ignore[union-attr]

    items = world.client("dynamodb").scan(TableName="ecs-medic-evidence")["Items"]
    ttl = {int(i[TTL_ATTRIBUTE]["N"]) for i in items if i[SORT_KEY]["S"].endswith("/t0")}
    assert ttl == {int((START + timedelta(minutes=10, hours=24)).timestamp())}


def test_dynamodb_skips_items_past_their_ttl_that_dynamodb_has_not_deleted_yet(world):
    now = [START]
    store = DynamoEvidence(gateway(world), "ecs-medic-evidence", timedelta(hours=1), lambda: now[0])
    store.record(WEB, oom("old", 0))
    store.record(WEB, oom("new", 90))
    now[0] = START + timedelta(minutes=100)
    assert [t["taskArn"][-3:] for t in store.recent(WEB, START - timedelta(days=1))] == ["new"]


def test_dynamodb_pages_through_long_windows(world):
    store = DynamoEvidence(gateway(world), "ecs-medic-evidence", timedelta(days=1), lambda: START)
    filler = "x" * 9000  # ~10 KB items: a 1 MB query page holds about a hundred
    for index in range(150):
        task = oom(f"t{index:03d}", index)
        task["stoppedReason"] = f"Essential container in task exited {filler}"
        store.record(WEB, task)
    assert len(store.recent(WEB, START - timedelta(minutes=1))) == 150


def test_dynamodb_writes_are_the_one_write_dry_run_may_allow(world):
    table = "ecs-medic-evidence"
    probe = DynamoEvidence(gateway(world), table, timedelta(days=1), lambda: START)
    aws = gateway(world, dry_run=True, dry_run_allows=probe.allows)
    store = DynamoEvidence(aws, table, timedelta(days=1), lambda: START)
    world.requests.clear()
    store.record(WEB, oom("t1", 10))
    assert len(store.recent(WEB, START)) == 1
    assert not probe.allows("dynamodb", "PutItem", {"TableName": "ecs-medic-leases"})
    assert not probe.allows("dynamodb", "DeleteItem", {"TableName": table})
    assert [r.operation for r in world.requests.mutating()] == ["PutItem"]


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **facts: Any) -> None:
        self.lines.append((event, facts))


def test_layered_reads_memory_for_recent_windows_and_the_table_for_older_ones(world):
    aws = gateway(world)
    durable = DynamoEvidence(aws, "ecs-medic-evidence", timedelta(days=1), lambda: START + timedelta(hours=3))
    durable.record(WEB, oom("before-restart", 30))  # written by the previous process
    log = Log()
    layered = LayeredEvidence(MemoryEvidence(), durable, START + timedelta(hours=1), log)
    layered.record(WEB, oom("after-restart", 100))
    world.requests.clear()
    recent = layered.recent(WEB, START + timedelta(hours=1, minutes=30))
    assert [t["taskArn"].rsplit("/", 1)[-1] for t in recent] == ["after-restart"]
    assert [r.operation for r in world.requests.all()] == [], "memory covers it: no read"
    both = layered.recent(WEB, START)
    assert [t["taskArn"].rsplit("/", 1)[-1] for t in both] == ["after-restart", "before-restart"]
    assert [r.operation for r in world.requests.all()] == ["Query"]
    assert log.lines == []


def test_layered_goes_to_the_table_for_what_memory_had_to_drop(world):
    durable = DynamoEvidence(gateway(world), "ecs-medic-evidence", timedelta(days=1), lambda: START)
    layered = LayeredEvidence(MemoryEvidence(per_service=2), durable, START, Log())
    for minute in (10, 20, 30):
        layered.record(WEB, oom(f"t{minute}", minute))
    assert len(layered.memory.recent(WEB, START)) == 2
    assert [t["taskArn"][-3:] for t in layered.recent(WEB, START)] == ["t30", "t20", "t10"]


def test_layered_keeps_memory_when_the_table_fails(world):
    aws = gateway(world)
    broken = DynamoEvidence(aws, "no-such-table", timedelta(days=1), lambda: START)
    log = Log()
    layered = LayeredEvidence(MemoryEvidence(), broken, START + timedelta(minutes=1), log)
    layered.record(WEB, oom("t1", 30))
    assert [t["taskArn"][-2:] for t in layered.recent(WEB, START)] == ["t1"]
    assert [event for event, _ in log.lines] == ["evidence_write_failed", "evidence_read_failed"]
    assert "ResourceNotFoundException" in log.lines[0][1]["error"]


def test_the_store_follows_the_settings(world):
    aws = gateway(world)
    assert isinstance(evidence_store(Settings(), aws=aws, now=lambda: START, log=Log()), MemoryEvidence)
    layered = evidence_store(
        Settings(evidence_table="ecs-medic-evidence", evidence_retention_seconds=7200),
        aws=aws,
        now=lambda: START,
        log=Log(),
    )
    assert isinstance(layered, LayeredEvidence)
    assert isinstance(layered.durable, DynamoEvidence)
    assert layered.durable.retention == timedelta(hours=2)
