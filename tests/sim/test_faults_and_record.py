"""Faults on demand, the request record, and the fingerprint: what tests of a client rely on."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from agent.sim import World

ONE_ATTEMPT = Config(retries={"total_max_attempts": 1})


def test_throttling_is_shaped_like_aws(web: World) -> None:
    web.faults.add(operation="DescribeServices", kind="throttle", rate=1.0)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    with pytest.raises(ecs.exceptions.ClientError) as raised:
        ecs.describe_services(cluster="prod", services=["web"])
    error = raised.value.response
    assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    ecs.list_services(cluster="prod")  # other operations are untouched
    web.faults.clear()
    ecs.describe_services(cluster="prod", services=["web"])


def test_query_protocol_throttling(web: World) -> None:
    web.faults.add(service="autoscaling", kind="throttle")
    with pytest.raises(ClientError) as raised:
        web.client("autoscaling", config=ONE_ATTEMPT).describe_auto_scaling_groups()
    assert raised.value.response["Error"]["Code"] == "Throttling"
    assert raised.value.response["Error"]["Message"] == "Rate exceeded"


def test_server_errors(web: World) -> None:
    web.faults.add(operation="UpdateService", kind="server_error")
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    with pytest.raises(ecs.exceptions.ServerException):
        ecs.update_service(cluster="prod", service="web", desiredCount=3)
    assert web.service_state("prod", "web").desired == 2, "a failed request changes nothing"
    assert web.requests.all()[-1].status == 500
    assert web.requests.all()[-1].fault == "server_error"


def test_a_rate_injects_some_faults_reproducibly(web: World) -> None:
    web.faults.add(operation="DescribeServices", kind="throttle", rate=0.3)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    outcomes = []
    for _ in range(30):
        try:
            ecs.describe_services(cluster="prod", services=["web"])
            outcomes.append(True)
        except ClientError:
            outcomes.append(False)
    assert 0 < outcomes.count(False) < 30


def test_latency(web: World) -> None:
    web.faults.add(operation="ListClusters", kind="latency", latency_seconds=0.2)
    ecs = web.client("ecs")
    started = time.perf_counter()
    ecs.list_clusters()
    assert time.perf_counter() - started >= 0.2


def test_the_record_proves_a_read_only_client_changed_nothing(web: World) -> None:
    web.requests.clear()
    before = web.fingerprint()
    ecs = web.client("ecs")
    ecs.describe_services(cluster="prod", services=["web"])
    ecs.list_tasks(cluster="prod", serviceName="web")
    web.client("logs").describe_log_groups()
    web.advance(600)
    assert web.requests.mutating() == []
    assert web.requests.names() == ["ecs:DescribeServices", "ecs:ListTasks", "logs:DescribeLogGroups"]
    assert all(r.at == web.now - timedelta(seconds=600) for r in web.requests.all()), "stamped with simulated time"
    assert web.fingerprint() == before, "the world's own runtime is not configuration"

    ecs.update_service(cluster="prod", service="web", healthCheckGracePeriodSeconds=120)
    assert [r.name for r in web.requests.mutating()] == ["ecs:UpdateService"]
    after = web.fingerprint()
    assert after.digest != before.digest
    assert before.diff(after) == ["services.prod/web.healthCheckGracePeriodSeconds"]


def test_builders_are_not_recorded(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1")
    world.deploy("prod", "web", image="web:v1")
    assert world.requests.all() == []


def test_fingerprint_sees_iam_autoscaling_and_tags(world: World) -> None:
    capacity = world.add_ec2_cluster("batch", instances=1, max_size=2)
    world.add_execution_role("api-execution")
    before = world.fingerprint()
    world.client("iam").delete_role_policy(RoleName="api-execution", PolicyName="ecr-pull")
    world.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName=capacity.asg_name, MaxSize=3)
    changed = before.diff(world.fingerprint())
    assert changed == ["autoScalingGroups.batch-asg.max", "iamRoles.api-execution.inline.ecr-pull"]


def test_a_reset_drops_the_request_before_it_is_carried_out(web: World) -> None:
    web.faults.add(operation="UpdateService", kind="reset", count=1)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    with pytest.raises(ConnectionClosedError):
        ecs.update_service(cluster="prod", service="web", desiredCount=3)
    assert web.service_state("prod", "web").desired == 2
    assert (web.requests.all()[-1].status, web.requests.all()[-1].fault) == (0, "reset")
    ecs.update_service(cluster="prod", service="web", desiredCount=3)  # count=1: the next one passes
    assert web.service_state("prod", "web").desired == 3


def test_a_lost_response_hides_a_change_that_happened(web: World) -> None:
    web.faults.add(operation="UpdateService", kind="lost_response", count=1)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    with pytest.raises(ConnectionClosedError):
        ecs.update_service(cluster="prod", service="web", desiredCount=3)
    assert web.service_state("prod", "web").desired == 3, "carried out, though the client never heard"
    assert (web.requests.all()[-1].status, web.requests.all()[-1].fault) == (200, "lost_response")


def test_a_fault_at_the_nth_call(web: World) -> None:
    web.faults.add(operation="UpdateService", kind="server_error", skip=2, count=1)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    ecs.update_service(cluster="prod", service="web", desiredCount=3)
    ecs.update_service(cluster="prod", service="web", desiredCount=4)
    with pytest.raises(ecs.exceptions.ServerException):
        ecs.update_service(cluster="prod", service="web", desiredCount=5)
    ecs.update_service(cluster="prod", service="web", desiredCount=6)
    assert [r.fault for r in web.requests.all() if r.operation == "UpdateService"] == [
        None,
        None,
        "server_error",
        None,
    ]


def test_a_hang_holds_the_answer_of_a_request_carried_out_until_released(web: World) -> None:
    web.faults.add(operation="UpdateService", kind="hang", count=1)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ecs.update_service(cluster="prod", service="web", desiredCount=3)
        except BaseException as error:  # noqa: BLE001 - the test reads it
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert web.faults.hanging.wait(10)
    assert web.service_state("prod", "web").desired == 3  # carried out while the answer is held
    assert caller.is_alive()
    web.faults.release()
    caller.join(10)
    assert [type(e) for e in errors] == [ConnectionClosedError]
