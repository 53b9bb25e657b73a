"""Evidence beyond ECS's hour where a person reads it: live `diagnose` explains what happened overnight
from the evidence table the agent keeps, read-only."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from agent.arns import ServiceKey
from agent.aws import AwsGateway
from agent.cli import main
from agent.evidence import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, DynamoEvidence
from agent.metrics import Metrics
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare

TABLE = "ecs-medic-evidence"


@pytest.fixture
def aws_env(monkeypatch) -> Iterator[World]:
    """A world whose clock started three hours ago (the commands use the real clock)."""
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(hours=3)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        yield world


def test_live_diagnosis_shows_the_stopped_tasks_ecs_forgot(aws_env, monkeypatch):
    world = aws_env
    world.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    prepare(world, SCENARIOS["crash-loop"])
    world.advance(120)
    crashed = world.stopped_tasks("prod", "worker")
    assert crashed
    # The agent kept them as they stopped (what `run` does in enforce mode with this table).
    gateway = AwsGateway(dry_run=False, metrics=Metrics(CollectorRegistry()), endpoint_url=world.endpoint_url)
    kept = DynamoEvidence(gateway, TABLE, timedelta(days=1), lambda: datetime.now(UTC))
    key = ServiceKey(world.account_id, world.region, "prod", "worker")
    for task in crashed:
        kept.record(key, task)
    # Someone rolled back in the night; hours later ECS shows no stopped task of the failed version.
    world.client("ecs").update_service(cluster="prod", service="worker", taskDefinition="worker:1")
    world.advance(2 * 3600)
    assert not [t for t in world.stopped_tasks("prod", "worker") if "worker:2" in t["taskDefinitionArn"]]

    def diagnose() -> dict:
        out = io.StringIO()
        assert main(["diagnose", "--cluster", "prod", "--service", "worker", "-o", "json"], stdout=out) == 0
        return json.loads(out.getvalue())

    assert "app_crash" not in {f["cause"] for f in diagnose()["findings"]}, "ECS alone has forgotten"
    monkeypatch.setenv("ECS_MEDIC_EVIDENCE_TABLE", TABLE)
    world.requests.clear()
    findings = diagnose()["findings"]
    crashes = [f for f in findings if f["cause"] == "app_crash" and f["sourceKind"] == "task"]
    assert {f["source"] for f in crashes} == {t["taskArn"] for t in crashed}
    assert world.requests.mutating() == [], "read, never written"
    item = world.client("dynamodb").scan(TableName=TABLE)["Items"][0]
    assert TTL_ATTRIBUTE in item
