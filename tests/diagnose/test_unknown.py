"""When the engine does not know, it says so usefully: the message, the nearest causes, what tells them apart."""

from __future__ import annotations

import pytest

from agent.diagnose import diagnose_document, diagnose_service, diagnose_task
from agent.diagnose.advice import advice_for
from agent.diagnose.messages import read_message
from agent.model import Cause
from agent.report import finding_to_dict
from tests.diagnose.builders import container, event, service, stopped_task


def test_a_bare_sigkill_names_oom_first_and_what_would_prove_it():
    finding = diagnose_task(stopped_task(container(exit_code=137)))
    assert finding is not None
    assert finding.cause == Cause.UNKNOWN
    assert [cause for cause, _ in finding.nearest][:2] == [Cause.OOM, Cause.HEALTH_CHECK_CONTAINER]
    assert "could be oom: look for 'OutOfMemoryError'" in "\n".join(finding.evidence)


def test_a_cut_off_resource_initialization_error_offers_network_secrets_and_auth():
    reading = read_message("ResourceInitializationError: unable to pull secrets or registry auth")
    assert reading is not None
    assert reading.cause == Cause.UNKNOWN
    assert {cause for cause, _ in reading.nearest} == {
        Cause.IMAGE_PULL_NETWORK,
        Cause.SECRETS_ERROR,
        Cause.IMAGE_PULL_AUTH,
    }


def test_a_start_failure_not_in_the_catalogue_is_ranked_by_its_own_words():
    reading = read_message("CannotStartContainerError: API error (500): driver")
    assert reading is not None
    assert reading.cause == Cause.UNKNOWN
    assert reading.nearest[0][0] in {Cause.VOLUME_ERROR, Cause.LOG_CONFIG_ERROR}  # "driver": a volume or log driver


def test_unknown_findings_carry_nearest_causes_in_json_and_known_ones_do_not():
    unknown = diagnose_task(stopped_task(container(exit_code=137)))
    known = diagnose_task(stopped_task(container(exit_code=1)))
    assert unknown is not None
    assert known is not None
    document = finding_to_dict(unknown)
    assert document["nearestCauses"][0] == {
        "cause": "oom",
        "tellApart": document["nearestCauses"][0]["tellApart"],
    }
    assert all(entry["tellApart"] for entry in document["nearestCauses"])
    assert "nearestCauses" not in finding_to_dict(known)


def test_unknown_advice_lists_the_causes_considered():
    finding = diagnose_task(stopped_task(container(exit_code=137)))
    assert finding is not None
    fix = advice_for(finding).fix
    assert "nearest to: oom if it says 'OutOfMemoryError'" in fix


def test_a_generic_task_failed_to_start_yields_to_the_containers_own_unknown_reason():
    reason = (
        "CannotStartContainerError: ResourceInitializationError: unable to create new container: mount callback "
        "failed on /tmp/containerd-mount1: open /tmp/containerd-mount1/etc/passwd: no such file or directory"
    )
    finding = diagnose_task(
        stopped_task(container(reason=reason), stop_code="TaskFailedToStart", stopped_reason="Task failed to start")
    )
    assert finding is not None
    assert finding.cause == Cause.UNKNOWN
    assert finding.subject.container == "app"
    assert finding.evidence[0] == f"container app: reason {reason!r}"


def test_an_unknown_stop_reason_is_never_called_a_routine_scale_in():
    finding = diagnose_task(
        stopped_task(container(), stop_code="ServiceSchedulerInitiated", stopped_reason="InternalError: <reason>")
    )
    assert finding is not None
    assert finding.failure


@pytest.mark.parametrize(
    "message",
    [
        "(service web) is unable to consistently start tasks successfully.",
        "(service web) was unable to place a task. Reason: Internal error.",
        (
            "(service web) was unable to stop or start tasks during a deployment because of the service deployment "
            "configuration. Update the minimumHealthyPercent or maximumPercent value and try again."
        ),
    ],
)
def test_unknown_service_events_say_what_they_could_be(message):
    [finding] = diagnose_service(service(events=[event(message)]))
    assert finding.cause == Cause.UNKNOWN
    assert finding.nearest
    assert finding.evidence[0] == f"event {message!r}"


def test_an_unknown_run_task_failure_is_ranked_by_its_words():
    [finding] = diagnose_document(failures=[{"arn": "arn:aws:ecs:us-east-1:1:task/x", "reason": "SUBNET IP EXHAUSTED"}])
    assert finding.cause == Cause.UNKNOWN
    assert finding.nearest[0][0] == Cause.NETWORK_ENI
