"""Every real ECS message in corpus.yaml, placed where ECS puts it, is diagnosed as the cause it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.diagnose import diagnose_document
from agent.diagnose.messages import read_message
from agent.model import Cause, Finding

CORPUS = yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text(encoding="utf-8"))
CLUSTER_ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _task(entry: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskArn": TASK_ARN,
        "clusterArn": CLUSTER_ARN,
        "group": "service:web",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7",
    }
    container: dict[str, Any] = {"name": "app", "lastStatus": "STOPPED"}
    if "exitCode" in entry:
        container["exitCode"] = entry["exitCode"]
    if entry["where"] == "stoppedReason":
        task["stoppedReason"] = entry["message"]
        task["stopCode"] = entry.get(
            "stopCode", "EssentialContainerExited" if "exitCode" in entry else "TaskFailedToStart"
        )
    else:
        container["reason"] = entry["message"]
        exited = "exitCode" in entry
        task["stopCode"] = entry.get("stopCode", "EssentialContainerExited" if exited else "TaskFailedToStart")
        task["stoppedReason"] = "Essential container in task exited" if exited else "Task failed to start"
    task["containers"] = [container]
    return task


def _service(**fields: Any) -> dict[str, Any]:
    return {"serviceName": "web", "clusterArn": CLUSTER_ARN, "events": [], "deployments": [], **fields}


def _diagnose(entry: dict[str, Any]) -> list[Finding]:
    where = entry["where"]
    if where in {"stoppedReason", "containerReason"}:
        return diagnose_document(tasks=[_task(entry)])
    if where == "serviceEvent":
        event = {
            "id": "5a7c1e9b-0000-4000-8000-000000000001",
            "createdAt": "2026-04-19T03:12:00Z",
            "message": entry["message"],
        }
        return diagnose_document(services=[_service(events=[event])])
    if where == "rolloutStateReason":
        # Only a FAILED deployment carries a failure reason; other reasons are read as messages.
        deployment = {
            "id": "ecs-svc/1234567890123456789",
            "status": "PRIMARY",
            "rolloutState": "FAILED",
            "rolloutStateReason": entry["message"],
            "failedTasks": 3,
            "taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:8",
        }
        return diagnose_document(services=[_service(deployments=[deployment])])
    if where == "runTaskFailure":
        failure = {
            "arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/abc",
            "reason": entry["message"],
        }
        if "detail" in entry:
            failure["detail"] = entry["detail"]
        return diagnose_document(failures=[failure])
    raise AssertionError(f"unknown place {where!r} in corpus entry {entry['id']}")


IN_PLACE = [
    e
    for e in CORPUS
    if e["where"] != "eventBridgeReason" and (e["where"] != "rolloutStateReason" or e["cause"] != "info")
]
AS_MESSAGES = [e for e in CORPUS if e["where"] in {"eventBridgeReason", "rolloutStateReason"}]


@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"]) for e in IN_PLACE])
def test_real_message_is_diagnosed_as_its_cause(entry: dict[str, Any]) -> None:
    findings = _diagnose(entry)
    if entry["cause"] == "info":
        assert findings == [], f"routine message produced {[f.cause.value for f in findings]}"
        return
    assert len(findings) == 1, f"expected one finding, got {[f.cause.value for f in findings]}"
    finding = findings[0]
    assert finding.cause == Cause(entry["cause"]), finding.summary
    assert finding.failure == Cause(entry["cause"]).is_failure
    quoted = repr(entry["message"])[1:41]  # evidence quotes messages with repr(): exact, and on one line
    assert any(entry["message"][:40] in line or quoted in line for line in finding.evidence)


@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"]) for e in AS_MESSAGES])
def test_deployment_reason_reads_as_its_cause(entry: dict[str, Any]) -> None:
    reading = read_message(entry["message"])
    if entry["cause"] == "info":
        assert reading is None or not reading.cause.is_failure
    else:
        assert reading is not None
        assert reading.cause == Cause(entry["cause"])


def test_corpus_ids_are_unique_and_every_entry_cites_a_source() -> None:
    ids = [e["id"] for e in CORPUS]
    assert len(ids) == len(set(ids))
    assert all(e.get("source") for e in CORPUS)
