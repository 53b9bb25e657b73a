"""A stopped task gets exactly one root cause: who stopped it, what the reason names, which container."""

from __future__ import annotations

import pytest

from agent.diagnose import diagnose_document, diagnose_service, diagnose_task
from agent.model import Cause
from agent.report import finding_to_dict
from tests.diagnose.builders import container, service, stopped_task

OOM = "OutOfMemoryError: Container killed due to memory usage"


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        pytest.param(stopped_task(container(exit_code=137, reason=OOM)), Cause.OOM, id="oom-exit-137"),
        pytest.param(stopped_task(container(exit_code=0, reason=OOM)), Cause.OOM, id="oom-reason-beats-exit-0"),
        pytest.param(
            stopped_task(
                container(exit_code=2),
                stop_code="SpotInterruption",
                stopped_reason="Your Spot Task was interrupted.",
            ),
            Cause.SPOT_INTERRUPTION,
            id="spot-interruption-with-exit-2",
        ),
        pytest.param(
            stopped_task(container(exit_code=137), stop_code="UserInitiated", stopped_reason="Task stopped by user"),
            Cause.USER_STOP,
            id="sigkill-after-user-stop-is-not-oom",
        ),
        pytest.param(
            stopped_task(
                container(exit_code=137),
                stop_code="ServiceSchedulerInitiated",
                stopped_reason="Scaling activity initiated by (deployment ecs-svc/1111111111111111111)",
            ),
            Cause.SCALE_IN_OR_DEPLOY,
            id="sigkill-after-scale-in-is-not-oom",
        ),
        pytest.param(
            stopped_task(
                container(exit_code=137),
                stop_code="ServiceSchedulerInitiated",
                stopped_reason="Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:"
                "123456789012:targetgroup/web/0123456789abcdef)",
            ),
            Cause.HEALTH_CHECK_ELB,
            id="sigkill-after-elb-health-check-is-elb",
        ),
        pytest.param(stopped_task(container(exit_code=137)), Cause.UNKNOWN, id="bare-137-without-oom-evidence"),
        pytest.param(stopped_task(container(exit_code=1)), Cause.APP_CRASH, id="exit-1-crash"),
        pytest.param(stopped_task(container(exit_code=139)), Cause.APP_CRASH, id="exit-139-segfault"),
        pytest.param(stopped_task(container(exit_code=255)), Cause.ENTRYPOINT_ERROR, id="exit-255-entrypoint"),
        pytest.param(stopped_task(container(exit_code=127)), Cause.ENTRYPOINT_ERROR, id="exit-127-command-not-found"),
        pytest.param(
            stopped_task(container("app", exit_code=1), container("datadog-agent", exit_code=137, reason=OOM)),
            Cause.APP_CRASH,
            id="essential-app-beats-sidecar-oom",
        ),
        pytest.param(
            stopped_task(container("app", exit_code=137), container("log_router", exit_code=1)),
            Cause.UNKNOWN,
            id="sidecar-exit-1-yields-to-app",
        ),
        pytest.param(
            stopped_task(container("app", exit_code=1), container("envoy", exit_code=143)),
            Cause.APP_CRASH,
            id="sidecar-sigterm-after-app-crash",
        ),
        pytest.param(
            stopped_task(
                container(),
                stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited. Exit code: 137",
            ),
            Cause.UNKNOWN,
            id="guide-exit-code-137-in-reason-without-oom-evidence",
        ),
        pytest.param(
            stopped_task(
                container(exit_code=137, reason=OOM),
                stopped_reason="Essential container in task exited. Exit code: 137",
            ),
            Cause.OOM,
            id="guide-exit-code-137-with-oom-reason",
        ),
        pytest.param(
            stopped_task(
                container(
                    reason="CannotPullContainerError: ref pull has been retried 5 time(s): failed to resolve "
                    "reference 123456789.dkr.ecr.us-east-1.amazonaws.com/my-app:v2.3.1"
                ),
                stop_code="TaskFailedToStart",
                stopped_reason="CannotPullContainerError: ref pull has been retried 5 time(s): failed to resolve "
                "reference 123456789.dkr.ecr.us-east-1.amazonaws.com/my-app:v2.3.1",
            ),
            Cause.IMAGE_NOT_FOUND,
            id="guide-ref-pull-retried-5-times",
        ),
        pytest.param(
            stopped_task(
                container(
                    reason="CannotPullContainerError: Error response from daemon: manifest for "
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v9 not found",
                    exit_code=0,
                ),
                stop_code="ServiceSchedulerInitiated",
                stopped_reason="Scaling activity initiated by (deployment ecs-svc/1111111111111111111)",
            ),
            Cause.IMAGE_NOT_FOUND,
            id="container-failure-beats-benign-stop-reason",
        ),
        pytest.param(
            stopped_task(
                container(exit_code=0),
                stop_code="TerminationNotice",
                stopped_reason="Your Spot Task was interrupted.",
            ),
            Cause.SPOT_INTERRUPTION,
            id="fargate-spot-termination-notice",
        ),
    ],
)
def test_stopped_task_root_cause(task, expected):
    finding = diagnose_task(task)
    assert finding is not None
    assert finding.cause == expected, finding.summary
    assert finding.source == task["taskArn"]
    assert finding.cluster == "prod"
    assert finding.service == "web"


def test_known_essential_flags_override_the_sidecar_heuristic():
    task = stopped_task(container("app", exit_code=143), container("datadog-agent", exit_code=137, reason=OOM))
    heuristic = diagnose_task(task)
    declared = diagnose_task(task, essential={"app": True, "datadog-agent": True})
    assert heuristic is not None
    assert declared is not None
    assert declared.cause == Cause.OOM
    assert declared.subject.container == "datadog-agent"


def test_non_essential_container_never_outranks_an_essential_one():
    task = stopped_task(container("app", exit_code=1), container("worker", exit_code=137, reason=OOM))
    finding = diagnose_task(task, essential={"app": True, "worker": False})
    assert finding is not None
    assert finding.cause == Cause.APP_CRASH
    assert finding.subject.container == "app"


def test_running_task_gets_no_finding():
    task = stopped_task(container())
    task.update(lastStatus="RUNNING", desiredStatus="RUNNING", stopCode=None, stoppedReason=None)
    assert diagnose_task(task) is None


def test_evidence_carries_the_deciding_strings_and_codes():
    finding = diagnose_task(stopped_task(container(exit_code=137, reason=OOM), container("envoy", exit_code=143)))
    assert finding is not None
    assert finding.evidence[0] == f"container app: exitCode 137, reason {OOM!r}"
    assert "stopCode EssentialContainerExited" in finding.evidence
    assert "stoppedReason 'Essential container in task exited'" in finding.evidence
    assert "container envoy: exitCode 143" in finding.evidence


def test_finding_records_how_long_the_task_ran():
    finding = diagnose_task(stopped_task(container(exit_code=1)))
    assert finding is not None
    assert finding.subject.run_seconds == 120.0
    assert finding.subject.task_definition == "web:42"
    assert finding.occurred_at is not None


def test_each_stopped_task_in_a_document_gets_exactly_one_finding():
    tasks = [
        stopped_task(container(exit_code=code), task_id=f"{index:032x}") for index, code in enumerate((1, 137, 255, 0))
    ]
    findings = diagnose_document(tasks=tasks)
    assert [f.source for f in findings] == [t["taskArn"] for t in tasks]


def test_benign_stops_are_findings_but_not_failures():
    finding = diagnose_task(
        stopped_task(container(exit_code=0), stop_code="UserInitiated", stopped_reason="Task stopped by user")
    )
    assert finding is not None
    assert finding.failure is False
    assert finding_to_dict(finding)["failure"] is False


def test_service_tasks_feed_the_service_findings():
    findings = diagnose_service(service(), [stopped_task(container(exit_code=137, reason=OOM))])
    assert [f.cause for f in findings] == [Cause.OOM]


def test_a_container_blocked_by_its_dependency_yields_to_the_dependency_s_own_failure():
    blocked = container(
        "app",
        reason="dependency graph: failed to resolve container ordering dependency [migrate] for target [app] as "
        "dependency did not exit successfully.",
    )
    task = stopped_task(blocked, container("migrate", exit_code=137, reason=OOM))
    finding = diagnose_task(task, essential={"app": True, "migrate": True})
    assert finding is not None
    assert finding.cause == Cause.OOM
    assert finding.subject.container == "migrate"


def test_a_dependency_that_failed_without_its_own_reason_is_a_crash():
    blocked = container(
        "app",
        reason="dependency graph: failed to resolve container ordering dependency [migrate] for target [app] as "
        "dependency did not exit successfully.",
    )
    finding = diagnose_task(stopped_task(blocked, container("migrate", exit_code=3)))
    assert finding is not None
    assert finding.cause == Cause.APP_CRASH
    assert finding.subject.container == "migrate"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("TaskFailedToStart: EMPTY CAPACITY PROVIDER", Cause.CAPACITY_QUOTA),
        ("TaskFailedToStart: AGENT", Cause.INSTANCE_DRAIN_OR_HOST_FAILURE),
        ("TaskFailedToStart: RESOURCE:ENI", Cause.NETWORK_ENI),
    ],
)
def test_task_failed_to_start_codes_read_like_run_task_failures(reason, expected):
    finding = diagnose_task(stopped_task(container(), stop_code="TaskFailedToStart", stopped_reason=reason))
    assert finding is not None
    assert finding.cause == expected
