"""The commands an operator types, against the simulated world configured the standard AWS way."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from agent.cli import main
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare


@pytest.fixture
def aws_env(monkeypatch):
    """A world whose clock is the real one (the commands use the real clock), as the environment sees it."""
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ECS_MEDIC_LOG_FORMAT", "json")
        yield world


def run(argv):
    out = io.StringIO()
    code = main(argv, stdout=out)
    return code, out.getvalue()


def test_once_prints_findings_and_proposals_as_one_json_object(aws_env):
    prepare(aws_env, SCENARIOS["crash-loop"])
    code, out = run(["once", "--output", "json"])
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"result", "services", "findings", "proposals", "verdicts", "errors"}
    assert (document["result"], document["errors"]) == ("ok", [])
    assert "app_crash" in {f["cause"] for f in document["findings"]}
    [rollback] = [p for p in document["proposals"] if p["action"] == "rollback_task_definition"]
    assert rollback["status"] == "proposed"
    assert rollback["mode"] == "dry-run"
    assert rollback["changes"] == [{"field": "taskDefinition", "current": "worker:2", "desired": "worker:1"}]
    assert rollback["commands"] == [
        "aws ecs update-service --cluster prod --service worker --task-definition worker:1 --region us-east-1"
    ]
    assert aws_env.requests.mutating() == []


def test_once_in_enforce_mode_acts(aws_env, monkeypatch):
    prepare(aws_env, SCENARIOS["crash-loop"])
    monkeypatch.setenv("ECS_MEDIC_MODE", "enforce")
    code, out = run(["once"])
    assert code == 0
    assert "APPLIED prod / worker: rollback_task_definition" in out
    assert aws_env.service_state("prod", "worker").task_definition.endswith("worker:1")


def test_manual_approval_flows_through_proposals_and_approve(aws_env, monkeypatch, capsys):
    prepare(aws_env, SCENARIOS["oom-exit-137"])
    monkeypatch.setenv("ECS_MEDIC_MODE", "enforce")
    code, out = run(["proposals", "--output", "json"])
    assert code == 0
    [waiting] = json.loads(out)["proposals"]
    assert (waiting["action"], waiting["status"]) == ("raise_memory", "awaiting_approval")
    assert run(["approve", waiting["id"]])[0] == 2  # no key: an approval could not prove who gave it
    assert "approvals are signed: set ECS_MEDIC_APPROVAL_KEY_ID" in capsys.readouterr().err
    monkeypatch.setenv("ECS_MEDIC_APPROVAL_KEY_ID", aws_env.approval_key_id)
    assert run(["approve", "p-0000000000"])[0] == 2
    assert f"no proposal p-0000000000 is waiting for approval (waiting now: {waiting['id']})" in capsys.readouterr().err
    agent_environment = dict(os.environ)
    for key, value in aws_env.approver_environment("alice").items():
        monkeypatch.setenv(key, value)
    code, out = run(["approve", waiting["id"]])
    assert code == 0
    approver = "arn:aws:sts::123456789012:assumed-role/ecs-medic-approver/alice"
    assert out.startswith(f"approved {waiting['id']}: raise_memory on prod/api")
    assert f"by {approver}, valid until " in out
    code, again = run(["approve", waiting["id"]])
    assert code == 0
    assert again.startswith(f"{waiting['id']} is already approved until ") and again.rstrip().endswith(approver)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, agent_environment[key])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    code, out = run(["once", "--output", "json"])
    [applied] = [p for p in json.loads(out)["proposals"] if p["action"] == "raise_memory"]
    assert applied["status"] == "applied"
    assert aws_env.service_state("prod", "api").task_definition.endswith("api:3")


def test_the_agent_cannot_approve_its_own_proposals(aws_env, monkeypatch, capsys):
    prepare(aws_env, SCENARIOS["oom-exit-137"])
    monkeypatch.setenv("ECS_MEDIC_MODE", "enforce")
    monkeypatch.setenv("ECS_MEDIC_APPROVAL_KEY_ID", aws_env.approval_key_id)
    [waiting] = json.loads(run(["proposals", "--output", "json"])[1])["proposals"]
    assert run(["approve", waiting["id"]])[0] == 0  # signed, but with the agent's own identity
    capsys.readouterr()
    _, out = run(["once", "--output", "json"])
    [still] = [p for p in json.loads(out)["proposals"] if p["action"] == "raise_memory"]
    assert still["status"] == "awaiting_approval"
    assert "the agent may not approve its own proposals" in capsys.readouterr().err
    assert aws_env.service_state("prod", "api").task_definition.endswith("api:2")


@pytest.mark.usefixtures("aws_env")
def test_bad_settings_and_policies_are_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ECS_MEDIC_MODE", "yolo")
    assert run(["once"])[0] == 2
    assert capsys.readouterr().err.startswith(
        "ecs-medic: bad setting: ECS_MEDIC_MODE: Input should be 'dry-run' or 'enforce'"
    )
    monkeypatch.delenv("ECS_MEDIC_MODE")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: ecs-medic/v1\nkind: RemediationPolicy\nmetadata: {name: x}\nspec: {when: {cause: oops}, remediation: {action: notify}}\n"
    )
    assert run(["once", "--policies", str(bad)])[0] == 2
    err = capsys.readouterr().err
    assert "ecs-medic: policies refused:" in err
    assert f"{bad}:4:22: policy x: spec.when.cause[0]: Input should be" in err
    assert run(["policies", "validate", str(bad)])[0] == 2


def test_policies_validate_lists_the_bundled_set():
    code, out = run(["policies", "validate"])
    assert code == 0
    assert out.startswith(
        "ok: 12 policies in 12 files\n  rollback-bad-deploy: rollback_task_definition (auto, priority 100)"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_run_serves_probes_and_stops_cleanly_on_sigterm(aws_env):
    prepare(aws_env, SCENARIOS["healthy"])
    port = _free_port()
    env = {**os.environ, "ECS_MEDIC_POLL_INTERVAL_SECONDS": "1", "ECS_MEDIC_METRICS_PORT": str(port)}
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.2)  # waiting on another process, not on simulated time
        assert status == 200, agent.stderr.read() if agent.poll() is not None else "not ready in 30 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            assert 'ecs_medic_reconcile_passes_total{result="ok"}' in response.read().decode()
        agent.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, _ = agent.communicate(timeout=10)
        assert agent.returncode == 0
        assert time.monotonic() - started < 10
    finally:
        if agent.poll() is None:
            agent.kill()
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[0] == "agent_started"
    assert "reconcile_pass" in events
    assert events[-2:] == ["shutdown_requested", "agent_stopped"]


def test_live_diagnosis_follows_the_troubleshooting_workflow(aws_env):
    prepare(aws_env, SCENARIOS["image-tag-missing"])
    code, out = run(["diagnose", "--cluster", "prod", "--service", "web", "--output", "json"])
    assert code == 0
    document = json.loads(out)
    assert "image_not_found" in {f["cause"] for f in document["findings"]}
    checks = {c["check"]: c for c in document["checks"]}
    assert checks["image"]["verdict"] == "problem"
    assert checks["image"]["lines"] == ["tag v2 is not in repository web", "newest tags in the repository: v1"]
    assert checks["service"]["verdict"] == "problem"
    assert aws_env.requests.mutating() == []


def test_live_diagnosis_reads_the_crashed_containers_last_log_lines(aws_env):
    prepare(aws_env, SCENARIOS["crash-loop"])
    code, out = run(["diagnose", "--cluster", "prod", "--service", "worker"])
    assert code == 0
    assert "  info logs\n         last 7 lines of /ecs/worker ecs/app/" in out
    assert "Field required [type=missing" in out


@pytest.mark.usefixtures("aws_env")
def test_live_diagnosis_of_a_missing_service_is_exit_2(capsys):
    assert run(["diagnose", "--cluster", "prod", "--service", "nope"])[0] == 2
    assert capsys.readouterr().err == "ecs-medic: no active service nope in cluster prod\n"
