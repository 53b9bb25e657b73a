"""Health that tells the truth: the agent against the simulated world, then with its endpoint unreachable.

A pass that observed nothing is not a finished pass: it does not move the last-pass timestamp, it
does not keep /healthz green, it makes /readyz red, and it is counted as `error`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

from agent import logs
from agent.http import Health
from agent.loop import Loop
from agent.policy.watch import PolicySource
from agent.settings import Mode
from agent.sim import SCENARIOS
from tests.e2e.conftest import prepare, start_agent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sample(run, name, **labels):
    value = run.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def closed_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_passes_against_an_unreachable_endpoint_are_errors_and_the_agent_stops_being_healthy(world):
    prepare(world, SCENARIOS["crash-loop"])
    run = start_agent(world, Mode.DRY_RUN)
    clock = Clock()
    health = Health(max_pass_age_seconds=120, clock=clock)
    when = [world.now]
    loop = Loop(
        run.reconciler, PolicySource(run.reconciler.settings.policies), health, 30, logs.logger(), now=lambda: when[0]
    )
    stop = threading.Event()

    first = loop.run_once(stop)
    assert first is not None
    assert (first.result, first.saw_fleet) == ("ok", True)
    assert health.healthy()[0]
    assert health.ready
    seen_at = sample(run, "ecs_medic_last_pass_timestamp_seconds")
    assert seen_at == world.now.timestamp()

    world.stop()  # the endpoint no longer answers: connection refused on every call
    for _ in range(5):
        clock.now += 30
        when[0] += timedelta(seconds=30)
        report = loop.run_once(stop)
        assert report is not None
        assert (report.result, report.services, report.saw_fleet) == ("error", 0, False)
        assert report.errors[0].operation == "ListClusters"
        assert "EndpointConnectionError" in report.errors[0].message

    assert sample(run, "ecs_medic_reconcile_passes_total", result="error") == 5
    assert sample(run, "ecs_medic_reconcile_passes_total", result="ok") == 1
    assert sample(run, "ecs_medic_last_pass_timestamp_seconds") == seen_at  # the stalled alert can fire
    healthy, why = health.healthy()
    assert not healthy
    assert why.startswith("no pass has seen the fleet for 150 s (limit 120 s); latest pass: error (ListClusters:")
    assert not health.ready


def test_an_agent_that_never_saw_the_fleet_is_not_healthy(world):
    world.stop()
    run = start_agent(world, Mode.DRY_RUN)
    clock = Clock()
    health = Health(max_pass_age_seconds=120, clock=clock)
    loop = Loop(run.reconciler, PolicySource(run.reconciler.settings.policies), health, 30, logs.logger())
    assert loop.run_once(threading.Event()).result == "error"
    healthy, why = health.healthy()
    assert not healthy
    assert why.startswith("starting: no pass has seen the fleet yet (0 s); latest pass: error (ListClusters: ")
    assert not health.ready
    assert sample(run, "ecs_medic_last_pass_timestamp_seconds") == 0


def test_a_crashing_pass_is_an_error_pass_and_never_stops_the_loop(world, monkeypatch, quiet_logs):
    prepare(world, SCENARIOS["healthy"])
    run = start_agent(world, Mode.DRY_RUN)
    health = Health(max_pass_age_seconds=120)
    loop = Loop(run.reconciler, PolicySource(run.reconciler.settings.policies), health, 30, logs.logger())

    def out_of_descriptors(*_args, **_kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(run.reconciler, "run_pass", out_of_descriptors)
    assert loop.run_once(threading.Event()) is None
    assert sample(run, "ecs_medic_reconcile_passes_total", result="error") == 1
    assert (health.last_result, health.last_problem) == ("error", "OSError: [Errno 24] Too many open files")
    assert '"event": "reconcile_failed"' in quiet_logs.getvalue()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_run_against_an_unreachable_endpoint_reports_unhealthy_and_counts_error_passes():
    """`ecs-medic run`, configured the standard AWS way, pointed at a loopback port where nothing listens."""
    port = closed_port()
    metrics_port = closed_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ECS_MEDIC_POLL_INTERVAL_SECONDS": "1s",
        "ECS_MEDIC_METRICS_PORT": str(metrics_port),
        "ECS_MEDIC_LISTEN_ADDRESS": "127.0.0.1",
    }
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        deadline = time.monotonic() + 60
        metrics = ""
        while time.monotonic() < deadline and 'ecs_medic_reconcile_passes_total{result="error"} 2.0' not in metrics:
            with contextlib.suppress(OSError):
                metrics = _get(f"{base}/metrics")[1]
            time.sleep(0.2)  # waiting on another process, not on simulated time
        assert 'ecs_medic_reconcile_passes_total{result="error"} 2.0' in metrics, "no error pass counted in 60 s"
        assert "ecs_medic_last_pass_timestamp_seconds 0.0" in metrics
        assert 'ecs_medic_reconcile_passes_total{result="ok"}' not in metrics
        status, body = _get(f"{base}/healthz")
        assert status == 503
        assert body.startswith("starting: no pass has seen the fleet yet")
        assert "latest pass: error (ListClusters: EndpointConnectionError" in body
        assert _get(f"{base}/readyz") == (503, "not ready: no pass has seen the fleet yet\n")
    finally:
        agent.terminate()
        out, _ = agent.communicate(timeout=30)
    passes = [json.loads(line) for line in out.splitlines() if '"reconcile_pass"' in line]
    assert passes
    assert {p["result"] for p in passes} == {"error"}
