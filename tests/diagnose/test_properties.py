"""Any task- or service-shaped JSON yields valid cause codes, one finding per stopped task, and never raises."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.diagnose import diagnose_document, is_stopped
from agent.model import Cause
from agent.report import finding_to_dict

MESSAGES = [e["message"] for e in yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text(encoding="utf-8"))]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def messages(draw: st.DrawFn) -> str:
    """Real messages, cut anywhere (ECS truncates them), or any text."""
    if draw(st.booleans()):
        message = draw(st.sampled_from(MESSAGES))
        return message[: draw(st.integers(0, len(message)))]
    return draw(st.text(max_size=80))


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly the right type, sometimes any JSON value at all."""
    return st.one_of(strategy, strategy, strategy, json_values)


containers = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["app", "datadog-agent", "envoy", "log_router", "web"])),
        "reason": maybe(messages()),
        "exitCode": maybe(st.sampled_from([0, 1, 2, 126, 127, 134, 137, 139, 143, 255, -1])),
        "image": maybe(st.just("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2")),
        "lastStatus": maybe(st.sampled_from(["STOPPED", "RUNNING"])),
    },
)
tasks = st.fixed_dictionaries(
    {
        "taskArn": maybe(
            st.text(min_size=1, max_size=20).map(lambda s: f"arn:aws:ecs:us-east-1:123456789012:task/prod/{s}")
        )
    },
    optional={
        "clusterArn": maybe(st.just("arn:aws:ecs:us-east-1:123456789012:cluster/prod")),
        "group": maybe(st.sampled_from(["service:web", "family:web", "service:"])),
        "lastStatus": maybe(st.sampled_from(["STOPPED", "RUNNING", "DEPROVISIONING", "PENDING"])),
        "desiredStatus": maybe(st.sampled_from(["STOPPED", "RUNNING"])),
        "stopCode": maybe(
            st.sampled_from(
                [
                    "TaskFailedToStart",
                    "EssentialContainerExited",
                    "UserInitiated",
                    "ServiceSchedulerInitiated",
                    "SpotInterruption",
                    "TerminationNotice",
                    "InfrastructureHealth",
                    "",
                ]
            )
        ),
        "stoppedReason": maybe(messages()),
        "startedAt": maybe(st.sampled_from(["2026-04-19T03:10:00Z", 1776568200.5, "yesterday"])),
        "stoppedAt": maybe(st.sampled_from(["2026-04-19T03:12:00+00:00", 1776568320, ""])),
        "startedBy": maybe(st.just("ecs-svc/1111111111111111111")),
        "taskDefinitionArn": maybe(st.just("arn:aws:ecs:us-east-1:123456789012:task-definition/web:7")),
        "containers": maybe(st.lists(maybe(containers), max_size=3)),
    },
)
events = st.fixed_dictionaries(
    {}, optional={"id": maybe(st.uuids().map(str)), "message": maybe(messages()), "createdAt": json_values}
)
deployments = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(st.sampled_from(["ecs-svc/1", "ecs-svc/2"])),
        "status": maybe(st.sampled_from(["PRIMARY", "ACTIVE", "INACTIVE"])),
        "rolloutState": maybe(st.sampled_from(["IN_PROGRESS", "COMPLETED", "FAILED"])),
        "rolloutStateReason": maybe(messages()),
        "failedTasks": maybe(st.integers(0, 300)),
        "taskDefinition": maybe(st.just("arn:aws:ecs:us-east-1:123456789012:task-definition/web:8")),
    },
)
services = st.fixed_dictionaries(
    {"serviceName": maybe(st.sampled_from(["web", "api"]))},
    optional={
        "clusterArn": maybe(st.just("arn:aws:ecs:us-east-1:123456789012:cluster/prod")),
        "events": maybe(st.lists(maybe(events), max_size=4)),
        "deployments": maybe(st.lists(maybe(deployments), max_size=3)),
        "deploymentConfiguration": json_values,
    },
)
failures = st.fixed_dictionaries(
    {},
    optional={"arn": maybe(st.text(max_size=10)), "reason": maybe(messages()), "detail": maybe(messages())},
)


def _valid(finding_dicts: list[dict[str, object]]) -> None:
    codes = {cause.value for cause in Cause}
    for finding in finding_dicts:
        assert finding["cause"] in codes
        assert isinstance(finding["summary"], str)
        assert "\n" not in finding["summary"]
        assert finding["failure"] is (finding["cause"] not in {"scale_in_or_deploy", "user_stop"})


@settings(max_examples=400, deadline=None)
@given(st.lists(tasks, max_size=4))
def test_any_task_shaped_json_gives_one_valid_finding_per_stopped_task(task_list):
    usable = [t for t in task_list if isinstance(t, dict)]
    findings = diagnose_document(tasks=usable)
    rendered = json.loads(json.dumps([finding_to_dict(f) for f in findings]))
    _valid(rendered)
    assert len(findings) == sum(1 for t in usable if is_stopped(t))


@settings(max_examples=300, deadline=None)
@given(st.lists(services, max_size=3), st.lists(tasks, max_size=3), st.lists(failures, max_size=2))
def test_any_service_shaped_json_gives_valid_findings(service_list, task_list, failure_list):
    findings = diagnose_document(
        services=[s for s in service_list if isinstance(s, dict)],
        tasks=[t for t in task_list if isinstance(t, dict)],
        failures=[f for f in failure_list if isinstance(f, dict)],
    )
    _valid(json.loads(json.dumps([finding_to_dict(f) for f in findings])))
