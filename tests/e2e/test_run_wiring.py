"""`ecs-medic run` as operators start it, in a process of its own against the world: event mode with its
work queue, the API budget on every gateway, several accounts with one refusing its role, sharded
replicas with a lease table, and the refusals that protect them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agent.cli import main
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare

MEMBER, DENIED = "222222222222", "333333333333"
EXTERNAL_ID = "ecs-medic-7f3a"


@pytest.fixture
def aws_env(monkeypatch) -> Iterator[World]:
    """A world whose clock is the real one (the agent uses the real clock), as the environment sees it."""
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ECS_MEDIC_LOG_FORMAT", "json")
        yield world


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Agent:
    """`ecs-medic run` in a process of its own; `metrics()` scrapes it."""

    def __init__(self, **settings: str) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "ECS_MEDIC_POLL_INTERVAL_SECONDS": "1",
            "ECS_MEDIC_METRICS_PORT": str(self.port),
            **settings,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out = ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def wait_for(self, condition, within: float = 40.0) -> str:
        """Scrape /metrics until `condition(text)` holds (a real process: real time passes)."""
        deadline = time.monotonic() + within
        text = ""
        while time.monotonic() < deadline:
            status, text = self.get("/metrics")
            if status == 200 and condition(text):
                return text
            if self.process.poll() is not None:
                pytest.fail(f"the agent exited: {self.process.stderr.read() if self.process.stderr else ''}")
            time.sleep(0.2)  # waiting on another process, not on simulated time
        pytest.fail(f"not within {within} s; last metrics:\n{text[-3000:]}")

    def stop(self) -> list[dict]:
        self.process.send_signal(signal.SIGTERM)
        self.out, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.kill()


def sample(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # as Prometheus prints them
    line_start = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_event_mode_works_off_the_queue_and_shows_the_budget(aws_env, agents):
    url = aws_env.configure_events_queue()
    prepare(aws_env, SCENARIOS["healthy"])
    # A deployment: ECS sends events about it, which wait in the queue for the agent. (The world answers
    # one request at a time: moving it on while the agent long-polls an empty queue would wait for that.)
    aws_env.deploy("prod", "web", image="web:v1")
    aws_env.advance(60)
    agent = Agent(ECS_MEDIC_EVENTS_QUEUE_URL=url, ECS_MEDIC_MODE="enforce")
    agents.append(agent)
    text = agent.wait_for(lambda t: 'ecs_medic_reconcile_passes_total{result="ok"}' in t)
    assert sample(text, "ecs_medic_queue_depth") is not None
    remaining = sample(
        text, "ecs_medic_aws_budget_remaining", account=aws_env.account_id, region=aws_env.region, bucket="service-read"
    )
    assert remaining is not None and 0 < remaining <= 50, "half of the bucket's 100 tokens, less what was used"
    agent.wait_for(lambda t: "DeleteMessageBatch" in t, within=30)
    assert agent.get("/readyz")[0] == 200
    lines = agent.stop()
    events = [line["event"] for line in lines]
    [started] = [line for line in lines if line["event"] == "agent_started"]
    assert started["events_queue"] is True and started["resync_seconds"] == 600
    assert "events_received" in events
    assert next(line["scope"] for line in lines if line["event"] == "reconcile_pass") == "all", "a full pass first"
    assert "shutdown_requested" in events
    assert events[-1] == "agent_stopped"


def test_one_accounts_refused_role_never_stalls_the_others(aws_env, agents):
    member = aws_env.add_account(MEMBER)
    member.add_fargate_cluster("payments")
    member.push_image("api", "v1")
    member.add_service("payments", "api", image="api:v1", desired_count=1, load_balanced=False)
    member.add_assumable_role("ecs-medic-member", trusted_account=aws_env.account_id, external_id=EXTERNAL_ID)
    denied = aws_env.add_account(DENIED)
    denied.add_assumable_role("ecs-medic-member", trusted_account=aws_env.account_id, external_id="another-id")
    aws_env.advance(60)
    roles = ",".join(f"arn:aws:iam::{a}:role/ecs-medic-member" for a in (DENIED, MEMBER))
    agent = Agent(ECS_MEDIC_ASSUME_ROLE_ARNS=roles, ECS_MEDIC_ASSUME_ROLE_EXTERNAL_ID=EXTERNAL_ID)
    agents.append(agent)
    text = agent.wait_for(
        lambda t: (
            sample(t, "ecs_medic_target_up", account=MEMBER, region=aws_env.region) == 1
            and sample(t, "ecs_medic_target_up", account=DENIED, region=aws_env.region) == 0
        )
    )
    assert sample(text, "ecs_medic_services_observed", cluster="payments") == 1
    member_budget = sample(
        text, "ecs_medic_aws_budget_remaining", account=MEMBER, region=aws_env.region, bucket="service-read"
    )
    assert member_budget is not None, "the member account's gateway draws on its own share"
    assert agent.get("/readyz")[0] == 200, "one account seen is a pass that saw the fleet"
    assert agent.get("/healthz")[0] == 200
    lines = agent.stop()
    [started] = [line for line in lines if line["event"] == "agent_started"]
    assert started["targets"] == [f"{DENIED}/{aws_env.region}", f"{MEMBER}/{aws_env.region}"]
    refused = [line for line in lines if line["event"] == "observe_failed" and line.get("account") == DENIED]
    assert refused and refused[0]["configuration"] is True


def test_sharded_replicas_split_the_fleet(aws_env, agents):
    aws_env.client("dynamodb").create_table(
        TableName="ecs-medic-lease",
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws_env.add_fargate_cluster("prod")
    aws_env.push_image("app", "v1")
    for index in range(8):
        aws_env.add_service("prod", f"svc-{index}", image="app:v1", load_balanced=False)
    aws_env.advance(120)
    settings = {
        "ECS_MEDIC_MODE": "enforce",
        "ECS_MEDIC_LEASE_TABLE": "ecs-medic-lease",
        "ECS_MEDIC_SHARDS": "4",
        "ECS_MEDIC_REPLICAS": "2",
        # A change may take 5 s at most here: the lease lasts 50 s, and rounds come every 17 s.
        "ECS_MEDIC_MAX_ACTION_SECONDS": "5",
    }
    first = Agent(**settings)
    agents.append(first)
    first.wait_for(lambda t: sample(t, "ecs_medic_shards_owned") == 4)
    second = Agent(**settings)
    agents.append(second)
    # The second replica joins: the first gives back its excess at its next lease round.
    text = second.wait_for(lambda t: (sample(t, "ecs_medic_shards_owned") or 0) >= 1, within=60)
    assert sample(text, "ecs_medic_is_leader") == 1
    for agent in (first, second):
        text = agent.wait_for(lambda t: (sample(t, "ecs_medic_services_observed", cluster="prod") or 8) < 8, within=60)
        assert 0 < (sample(text, "ecs_medic_services_observed", cluster="prod") or 0) < 8, "a share of the fleet"


def test_several_shards_in_enforce_mode_need_a_lease_table(monkeypatch, capsys):
    monkeypatch.setenv("ECS_MEDIC_MODE", "enforce")
    monkeypatch.setenv("ECS_MEDIC_SHARDS", "4")
    assert main(["run"]) == 2
    assert "ECS_MEDIC_SHARDS=4 in enforce mode needs ECS_MEDIC_LEASE_TABLE" in capsys.readouterr().err
