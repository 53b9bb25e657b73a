"""How well the engine names the cause of every corpus row, per cause, on the rows held out and on all.

A row is *held out* when the CRC-32 of its id falls in the first three tenths: a fixed third of the
corpus, chosen by name and not by content, that a new rule must not be tuned against. The report is
printed at the end of every test run that reads the corpus, and the held-out accuracy is asserted.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.diagnose import diagnose_document
from agent.diagnose.messages import read_message
from agent.model import Finding

CORPUS_PATH = Path(__file__).parent / "corpus.yaml"
CORPUS: list[dict[str, Any]] = yaml.safe_load(CORPUS_PATH.read_text(encoding="utf-8"))
CLUSTER_ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
HELD_OUT_TENTHS = 3
TARGET = 0.97
INFO = "info"


def held_out(entry: dict[str, Any]) -> bool:
    return zlib.crc32(entry["id"].encode()) % 10 < HELD_OUT_TENTHS


def task_for(entry: dict[str, Any]) -> dict[str, Any]:
    """The stopped task a row describes, with the message where ECS puts it."""
    task: dict[str, Any] = {
        "taskArn": TASK_ARN,
        "clusterArn": CLUSTER_ARN,
        "group": "service:web",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7",
    }
    container: dict[str, Any] = {"name": "app", "lastStatus": "STOPPED"}
    exited = "exitCode" in entry
    if exited:
        container["exitCode"] = entry["exitCode"]
    task["stopCode"] = entry.get("stopCode", "EssentialContainerExited" if exited else "TaskFailedToStart")
    if entry["where"] == "stoppedReason":
        task["stoppedReason"] = entry["message"]
    else:
        container["reason"] = entry["message"]
        task["stoppedReason"] = "Essential container in task exited" if exited else "Task failed to start"
    task["containers"] = [container]
    return task


def service_for(**fields: Any) -> dict[str, Any]:
    return {"serviceName": "web", "clusterArn": CLUSTER_ARN, "events": [], "deployments": [], **fields}


def diagnose(entry: dict[str, Any]) -> list[Finding]:
    """The findings for a row placed where ECS puts its message."""
    where = entry["where"]
    if where in {"stoppedReason", "containerReason"}:
        return diagnose_document(tasks=[task_for(entry)])
    if where == "serviceEvent":
        event = {
            "id": "5a7c1e9b-0000-4000-8000-000000000001",
            "createdAt": "2026-04-19T03:12:00Z",
            "message": entry["message"],
        }
        return diagnose_document(services=[service_for(events=[event])])
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
        return diagnose_document(services=[service_for(deployments=[deployment])])
    if where == "runTaskFailure":
        failure = {"arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/abc", "reason": entry["message"]}
        if "detail" in entry:
            failure["detail"] = entry["detail"]
        return diagnose_document(failures=[failure])
    raise AssertionError(f"unknown place {where!r} in corpus entry {entry['id']}")


def read_as_message(entry: dict[str, Any]) -> bool:
    """Rows ECS shows outside describe-* output (EventBridge reasons) and routine rollout reasons are read
    as bare messages."""
    return entry["where"] == "eventBridgeReason" or (entry["where"] == "rolloutStateReason" and entry["cause"] == INFO)


def verdict(entry: dict[str, Any]) -> str:
    """The cause the engine names for a row (`info` for no finding, `a+b` for several)."""
    if read_as_message(entry):
        reading = read_message(entry["message"])
        return reading.cause.value if reading is not None and reading.cause.is_failure else INFO
    findings = diagnose(entry)
    return "+".join(f.cause.value for f in findings) if findings else INFO


@dataclass
class Tally:
    right: int = 0
    total: int = 0
    wordings: set[str] = field(default_factory=set)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 1.0


@dataclass
class Report:
    held_out: dict[str, Tally]
    everything: dict[str, Tally]
    misses: list[tuple[str, str, str]]  # (id, expected, got)

    def below_target(self) -> dict[str, float]:
        return {cause: t.accuracy for cause, t in self.held_out.items() if t.accuracy < TARGET}

    def render(self) -> str:
        rows = sum(t.total for t in self.everything.values())
        held = sum(t.total for t in self.held_out.values())
        lines = [
            f"diagnosis corpus: {rows} rows, {held} held out (target {TARGET:.0%} per cause)",
            f"{'cause':<32}{'held out':>12}{'all rows':>12}{'wordings':>10}",
        ]
        for cause in sorted(self.everything):
            every = self.everything[cause]
            held = self.held_out.get(cause, Tally())
            held_text = f"{held.right}/{held.total} {held.accuracy:>4.0%}" if held.total else "-"
            lines.append(
                f"{cause:<32}{held_text:>12}{f'{every.right}/{every.total} {every.accuracy:>4.0%}':>12}"
                f"{len(every.wordings):>10}"
            )
        lines += [f"  miss {row}: expected {expected}, got {got}" for row, expected, got in self.misses]
        return "\n".join(lines)


def evaluate(corpus: list[dict[str, Any]] = CORPUS) -> Report:
    held: dict[str, Tally] = defaultdict(Tally)
    every: dict[str, Tally] = defaultdict(Tally)
    misses = []
    for entry in corpus:
        expected, got = entry["cause"], verdict(entry)
        tallies = (every[expected], held[expected]) if held_out(entry) else (every[expected],)
        for tally in tallies:
            tally.total += 1
            tally.right += got == expected
        every[expected].wordings.add(entry["message"])
        if got != expected:
            misses.append((entry["id"], expected, got))
    return Report(dict(held), dict(every), misses)
