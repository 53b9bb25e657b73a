"""Other clients than boto3 see the same account: the real `aws` CLI, and `serve` in its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import boto3

from agent.sim import SCENARIOS, World

AWS = Path(sys.executable).with_name("aws")


def _aws(world: World, *args: str) -> dict[str, object]:
    env = {**os.environ, **world.environment, "AWS_PAGER": ""}
    done = subprocess.run(
        [str(AWS), "--endpoint-url", world.endpoint_url, "--output", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def test_the_aws_cli_reads_the_world(world: World) -> None:
    SCENARIOS["oom-exit-137"].setup(world)

    described = _aws(world, "ecs", "describe-services", "--cluster", "prod", "--services", "api")
    service = described["services"][0]  # type: ignore[index]
    assert service["serviceName"] == "api"
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert service["deployments"][0]["failedTasks"] > 0
    assert any("has started" in e["message"] for e in service["events"])

    arns = _aws(world, "ecs", "list-tasks", "--cluster", "prod", "--service-name", "api", "--desired-status", "STOPPED")
    tasks = _aws(world, "ecs", "describe-tasks", "--cluster", "prod", "--tasks", *arns["taskArns"][:5])["tasks"]  # type: ignore[index]
    assert {t["stopCode"] for t in tasks} == {"EssentialContainerExited"}
    assert {c["reason"] for t in tasks for c in t["containers"]} == {
        "OutOfMemoryError: Container killed due to memory usage"
    }
    assert [r.name for r in world.requests.all()] == ["ecs:DescribeServices", "ecs:ListTasks", "ecs:DescribeTasks"]


def test_serve_runs_until_terminated(tmp_path: Path) -> None:
    script = "import sys\nfrom agent.sim.serve import serve\nserve('placement-cpu', 0, 30.0, sys.stdout)\n"
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        endpoint = re.search(r"on (http://127\.0\.0\.1:\d+)", first)
        assert endpoint, first
        lines = [process.stdout.readline() for _ in range(12)]
        assert "  export AWS_ENDPOINT_URL=" + endpoint.group(1) + "\n" in lines
        assert any("ecs describe-services --cluster batch --services reports" in line for line in lines)
        ecs = boto3.client(
            "ecs",
            endpoint_url=endpoint.group(1),
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        service = ecs.describe_services(cluster="batch", services=["reports"])["services"][0]
        assert service["desiredCount"] == 6
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "ecs-sim: stopped" in out
