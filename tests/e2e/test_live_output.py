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
    [proposal] = [p.to_dict() for p in report.proposals if p.action == "raise_memory"]
    assert SECRET_VALUE in proposal["commands"][0]  # the proposal itself carries the runnable command
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
    register = shown["commands"][0]
    payload = json.loads(register.split("--cli-input-json ", 1)[1].split(" --region", 1)[0].strip("'"))
    memory = shown["changes"][0]["desired"]
    assert payload == {"containerDefinitions": [{"memory": memory, "name": "app"}], "family": "api"} | (
        {k: payload[k] for k in ("cpu", "memory") if k in payload}
    )
    assert shown["redacted"].startswith("task-definition content the change does not touch")
    assert shown["commands"][1] == proposal["commands"][1]  # update-service carries no secret: unchanged
