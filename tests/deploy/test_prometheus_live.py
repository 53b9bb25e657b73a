"""A real Prometheus scrapes the agent running against the simulated world; every dashboard query and
every alert rule is evaluated through Prometheus' HTTP API, and the remediation panels return data."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent import logs
from agent.demo import agent_for, manage
from agent.http import Health, StatusServer
from agent.metrics import Metrics
from agent.settings import LogFormat, Mode, Settings
from agent.sim import SCENARIOS, World
from tests.deploy.conftest import ALERTS, DASHBOARD, tool

GRAFANA_VARIABLES = {"$cluster": ".*", "$service": ".*", "$__rate_interval": "1m", "$__range": "10m"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def _wait(condition: Any, what: str, seconds: float = 45.0) -> None:
    """Wait for another process (Prometheus), never for simulated time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def agent_endpoint() -> Iterator[str]:
    """The agent, enforcing, against a crash-looping service; passes keep running while Prometheus scrapes."""
    logs.configure(LogFormat.JSON, stream=io.StringIO())
    with World.start(seed=3) as world:
        chosen = [SCENARIOS["crash-loop"]]
        for scenario in chosen:
            scenario.setup(world)
        manage(world, chosen)
        metrics = Metrics(CollectorRegistry())
        reconciler = agent_for(world, Settings(mode=Mode.ENFORCE), metrics=metrics)
        health = Health(max_pass_age_seconds=3600)
        server = StatusServer(metrics, health, 0, host="127.0.0.1").start()
        stop = threading.Event()

        def passes() -> None:
            while not stop.is_set():
                reconciler.run_pass(world.now)
                health.pass_finished()
                world.advance(30)
                stop.wait(0.3)

        thread = threading.Thread(target=passes, daemon=True)
        thread.start()
        try:
            yield f"127.0.0.1:{server.port}"
        finally:
            stop.set()
            thread.join(timeout=30)
            server.stop()


@pytest.fixture
def prometheus(agent_endpoint: str, tmp_path: Path) -> Iterator[str]:
    binary = tool("prometheus")
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(ALERTS))}]\n"
        "scrape_configs:\n"
        f"  - job_name: ecs-medic\n    static_configs: [{{targets: [{json.dumps(agent_endpoint)}]}}]\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, "Prometheus to be ready")  # noqa: S310
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def _query(base: str, expr: str) -> dict[str, Any]:
    answer: dict[str, Any] = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    return answer


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"a dashboard variable the test does not know: {expr}"
            queries.append((panel["title"], expr))
    return queries


def test_live_scrape_is_clean_for_promtool(agent_endpoint):
    with urllib.request.urlopen(f"http://{agent_endpoint}/metrics", timeout=5) as response:
        scrape = response.read().decode()
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=scrape, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_every_dashboard_query_and_alert_rule_evaluates_and_remediation_panels_have_data(prometheus):
    _wait(
        lambda: _query(prometheus, 'ecs_medic_remediations_total{outcome="verified"}')["data"]["result"],
        "a verified remediation to be scraped",
    )
    _wait(lambda: len(_query(prometheus, "ecs_medic_reconcile_passes_total")["data"]["result"]) > 0, "a few scrapes")
    time.sleep(3)  # a few more scrapes, so that rates and increases have two samples in their window
    for title, expr in _dashboard_queries():
        answer = _query(prometheus, expr)
        assert answer["status"] == "success", (title, expr, answer)
        if "ecs_medic_remediations_total" in expr and "awaiting_approval" not in expr and "not_effective" not in expr:
            assert answer["data"]["result"], f"panel {title!r} has no data: {expr}"
    _wait(
        lambda: all(r.get("lastEvaluation", "").startswith("20") for r in _rules(prometheus)),
        "every alert rule to be evaluated",
    )
    rules = _rules(prometheus)
    names = {rule["name"] for rule in rules}
    assert names == set(re.findall(r"- alert: (\w+)", ALERTS.read_text()))
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def _rules(base: str) -> list[dict[str, Any]]:
    groups = _get(f"{base}/api/v1/rules")["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]
