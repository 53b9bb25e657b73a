"""What people read from a live agent: live diagnosis with the facts it read, output that a log line
cannot forge, and /proposals that never shows a task definition's environment or secrets."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from agent.cli import main
from agent.http import Health, StatusServer
from agent.metrics import Metrics
from agent.settings import Mode
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare, start_agent

SECRET_VALUE = "hunter2-do-not-print"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api/db-password-AbCdEf"


@pytest.fixture
def aws_env(monkeypatch):
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("ECS_MEDIC_LOG_FORMAT", raising=False)
        yield world


def run(argv):
    out = io.StringIO()
    code = main(argv, stdout=out)
    return code, out.getvalue()


def test_live_diagnosis_fills_advice_with_what_it_read_and_prints_log_lines_inert(aws_env):
    prepare(aws_env, SCENARIOS["crash-loop"])
    code, out = run(["diagnose", "--cluster", "prod", "--service", "worker"])
    assert code == 0
    head = next(line for line in out.splitlines() if "lines of /ecs/worker" in line)
    group, stream = head.split(" of ", 1)[1].rstrip(":").split(" ")
    logs = aws_env.client("logs")
    forged = "boom\x1b[2J\x1b[H\nAll checks ok\r\x1b]0;pwned\x07"
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": forged}],
    )
    code, out = run(["diagnose", "--cluster", "prod", "--service", "worker"])
    assert code == 0
    assert "boom" in out
    assert "\x1b" not in out
    assert "\r" not in out
    assert not any(line.lstrip().startswith("All checks ok") for line in out.splitlines())
    # The advice names the log group live diagnosis read, not a placeholder.
    assert "<awslogs-group>" not in out
    assert f"logs get-log-events --log-group-name {group}" in out
    code, out = run(["diagnose", "--cluster", "prod", "--service", "worker", "-o", "json"])
    commands = [c for f in json.loads(out)["findings"] for c in f["advice"]["commands"]]
    assert any(f"--log-group-name {group} " in c for c in commands)


def _with_environment_and_secrets(world: World, cluster: str, service: str) -> None:
    """What many real task definitions carry: plain environment values and secrets."""
    ecs = world.client("ecs")
    current = ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"]
    definition = ecs.describe_task_definition(taskDefinition=current)["taskDefinition"]
    keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "requiresCompatibilities", "cpu", "memory")
    containers = definition["containerDefinitions"]
    containers[0]["environment"] = [{"name": "DB_PASSWORD", "value": SECRET_VALUE}]
    containers[0]["secrets"] = [{"name": "API_KEY", "valueFrom": SECRET_ARN}]
    revision = ecs.register_task_definition(
        **{k: definition[k] for k in keep if definition.get(k)}, containerDefinitions=containers
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=cluster, service=service, taskDefinition=revision)


def test_proposals_endpoint_shows_only_what_the_change_touches(world):
    prepare(world, SCENARIOS["oom-exit-137"])
    _with_environment_and_secrets(world, "prod", "api")
    world.advance(600)
    run = start_agent(world, Mode.DRY_RUN)
    report = run.passes(1)
    [planned] = [p for p in report.proposals if p.action == "raise_memory"]
    proposal = planned.to_dict()
    register = planned.plan.calls[0]
    assert SECRET_VALUE in json.dumps(register.params)  # the call sends the whole new revision ...
    assert SECRET_VALUE not in json.dumps(proposal)  # ... the proposal shows only what the change sets
    assert SECRET_ARN not in json.dumps(proposal)
    health = Health(max_pass_age_seconds=120, proposals=lambda: [proposal])
    server = StatusServer(Metrics(CollectorRegistry()), health, 0, host="127.0.0.1").start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/proposals", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.stop()
    assert SECRET_VALUE not in body
    assert SECRET_ARN not in body
    assert "DB_PASSWORD" not in body
    assert '"environment"' not in body
    [shown] = json.loads(body)["proposals"]
    memory = shown["changes"][0]["desired"]
    # The printed command reads the current revision and sets the memory in a copy of it (jq).
    assert "aws ecs describe-task-definition --task-definition api:" in shown["commands"][0]
    assert f'(.containerDefinitions[] | select(.name == "app") | .memory) = {memory}' in shown["commands"][0]
