"""The world through public APIs only: what a client changes takes effect, and ECS's shapes hold."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from agent.diagnose import diagnose_service, dominant_cause
from agent.model import Cause
from agent.sim import AppProfile, World
from agent.sim.rollout import breaker_threshold
from tests.sim.times import START


def test_timestamps_come_from_the_simulated_clock(web: World) -> None:
    ecs = web.client("ecs")
    described = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    arns = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"]
    tasks = ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"]
    stamps = [described["deployments"][0]["createdAt"], *(e["createdAt"] for e in described["events"])]
    stamps += [t[k] for t in tasks for k in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt")]
    assert all(START <= stamp <= web.now for stamp in stamps)
    assert web.now == START + timedelta(seconds=300)


def test_running_tasks_look_like_ecs_tasks(web: World) -> None:
    ecs = web.client("ecs")
    arns = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"]
    assert len(arns) == 2
    task = ecs.describe_tasks(cluster="prod", tasks=arns[:1])["tasks"][0]
    assert re.match(r"^arn:aws:ecs:us-east-1:123456789012:task/prod/[0-9a-f]{32}$", task["taskArn"])
    assert task["lastStatus"] == task["desiredStatus"] == "RUNNING"
    assert task["group"] == "service:web"
    assert task["launchType"] == "FARGATE" and task["platformVersion"] == "1.4.0"
    assert task["connectivity"] == "CONNECTED"
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert "stopCode" not in task and "stoppedReason" not in task
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert details["privateIPv4Address"].startswith("10.0.")
    container = task["containers"][0]
    assert container["name"] == "app" and container["lastStatus"] == "RUNNING"
    assert container["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v1"
    assert container["imageDigest"].startswith("sha256:")
    described = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert task["startedBy"] == described["deployments"][0]["id"]


def test_update_service_makes_a_new_primary_deployment(web: World) -> None:
    ecs = web.client("ecs")
    definition = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
    keep = (
        "family",
        "containerDefinitions",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "executionRoleArn",
    )
    ecs.register_task_definition(**{k: definition[k] for k in keep})

    updated = ecs.update_service(cluster="prod", service="web", taskDefinition="web:2")["service"]
    assert updated["taskDefinition"] == "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"
    primary, active = updated["deployments"]
    assert (primary["status"], primary["rolloutState"], primary["runningCount"]) == ("PRIMARY", "IN_PROGRESS", 0)
    assert primary["rolloutStateReason"] == f"ECS deployment {primary['id']} in progress."
    assert (active["status"], active["rolloutState"], active["runningCount"]) == ("ACTIVE", "COMPLETED", 2)
    assert updated["runningCount"] == 2

    web.advance_until(lambda: web.service_state("prod", "web").steady, within=600)
    described = web.describe_service("prod", "web")
    assert [d["taskDefinition"].rsplit("/", 1)[-1] for d in described["deployments"]] == ["web:2"]
    messages = [e["message"] for e in described["events"]]
    assert messages[0] == "(service web) has reached a steady state."
    assert messages[1] == f"(service web) (deployment {primary['id']}) deployment completed."
    assert any(m.startswith("(service web) has stopped 2 running tasks:") for m in messages)


def test_desired_count_is_the_worlds_to_reach(web: World) -> None:
    ecs = web.client("ecs")
    updated = ecs.update_service(cluster="prod", service="web", desiredCount=4)["service"]
    assert (updated["desiredCount"], updated["runningCount"]) == (4, 2)
    web.advance(10)
    assert web.service_state("prod", "web").pending == 2
    web.advance_until(lambda: web.service_state("prod", "web").running == 4, within=300)
    ecs.update_service(cluster="prod", service="web", desiredCount=1)
    web.advance(120)
    state = web.service_state("prod", "web")
    assert (state.running, state.desired) == (1, 1)
    stopped = web.stopped_tasks("prod", "web")
    assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
    assert {t["stoppedReason"] for t in stopped} == {
        f"Scaling activity initiated by (deployment {t['startedBy']})" for t in stopped
    }


def test_service_tags_round_trip(web: World) -> None:
    ecs = web.client("ecs")
    arn = web.describe_service("prod", "web")["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "ecs-medic/last-good", "value": "web:1"}])
    tags = ecs.describe_services(cluster="prod", services=["web"], include=["TAGS"])["services"][0]["tags"]
    assert {"key": "ecs-medic/last-good", "value": "web:1"} in tags
    web.advance(60)
    ecs.untag_resource(resourceArn=arn, tagKeys=["ecs-medic/last-good"])
    tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
    assert all(t["key"] != "ecs-medic/last-good" for t in tags)


def test_a_service_created_by_a_client_is_run_with_its_configuration(world: World) -> None:
    world.add_fargate_cluster("prod")
    image = world.push_image("api", "v1")
    ecs = world.client("ecs")
    definition = ecs.register_task_definition(
        family="api",
        containerDefinitions=[{"name": "app", "image": image, "essential": True}],
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        executionRoleArn="arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
    )["taskDefinition"]["taskDefinitionArn"]
    created = ecs.create_service(
        cluster="prod",
        serviceName="api",
        taskDefinition=definition,
        desiredCount=3,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [world.network.subnets[0][0]],
                "securityGroups": [world.network.security_group],
            }
        },
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        healthCheckGracePeriodSeconds=90,
    )["service"]
    assert created["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert created["healthCheckGracePeriodSeconds"] == 90
    assert re.match(r"^ecs-svc/\d{19}$", created["deployments"][0]["id"])
    world.advance_until(lambda: world.service_state("prod", "api").steady, within=300)


def test_list_tasks_filters_by_service_and_pages(world: World) -> None:
    world.add_fargate_cluster("prod")
    for name in ("alpha", "beta"):
        world.push_image(name, "v1")
        world.add_service("prod", name, image=f"{name}:v1", desired_count=3, load_balanced=False)
    world.advance(120)
    ecs = world.client("ecs")
    assert len(ecs.list_tasks(cluster="prod", serviceName="alpha")["taskArns"]) == 3
    assert len(ecs.list_tasks(cluster="prod")["taskArns"]) == 6
    first = ecs.list_tasks(cluster="prod", maxResults=4)
    assert len(first["taskArns"]) == 4
    rest = ecs.list_tasks(cluster="prod", maxResults=4, nextToken=first["nextToken"])
    assert len(rest["taskArns"]) == 2 and "nextToken" not in rest
    pages = ecs.get_paginator("list_tasks").paginate(cluster="prod", PaginationConfig={"PageSize": 2})
    assert sum(len(p["taskArns"]) for p in pages) == 6


def test_list_services_pages_ten_at_a_time(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("svc", "v1")
    for index in range(12):
        world.add_service("prod", f"svc-{index:02d}", image="svc:v1", desired_count=0, load_balanced=False)
    ecs = world.client("ecs")
    first = ecs.list_services(cluster="prod")
    assert len(first["serviceArns"]) == 10 and "nextToken" in first
    pages = ecs.get_paginator("list_services").paginate(cluster="prod")
    assert sum(len(p["serviceArns"]) for p in pages) == 12


def test_describe_tasks_reports_missing_tasks(web: World) -> None:
    result = web.client("ecs").describe_tasks(cluster="prod", tasks=["0" * 32])
    assert result["tasks"] == []
    assert result["failures"] == [
        {"arn": f"arn:aws:ecs:us-east-1:123456789012:task/prod/{'0' * 32}", "reason": "MISSING"}
    ]


def test_stop_task_is_user_initiated(web: World) -> None:
    ecs = web.client("ecs")
    arn = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"][0]
    stopped = ecs.stop_task(cluster="prod", task=arn, reason="debugging")["task"]
    assert (stopped["desiredStatus"], stopped["stopCode"], stopped["stoppedReason"]) == (
        "STOPPED",
        "UserInitiated",
        "debugging",
    )
    web.advance(120)
    task = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    assert task["containers"][0]["exitCode"] == 0
    assert web.service_state("prod", "web").running == 2, "the scheduler replaced it"
    with pytest.raises(ClientError, match="The referenced task was not found"):
        ecs.stop_task(cluster="prod", task="f" * 32)


def test_stopped_tasks_expire_after_an_hour(web: World) -> None:
    ecs = web.client("ecs")
    arn = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"][0]
    ecs.stop_task(cluster="prod", task=arn)
    web.advance(1800)
    assert arn in ecs.list_tasks(cluster="prod", desiredStatus="STOPPED")["taskArns"]
    web.advance(1900)
    assert ecs.list_tasks(cluster="prod", desiredStatus="STOPPED")["taskArns"] == []
    assert ecs.describe_tasks(cluster="prod", tasks=[arn])["failures"][0]["reason"] == "MISSING"


def test_events_are_newest_first_and_at_most_a_hundred(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.push_image("web", "v2", AppProfile.crashing("boom", after_seconds=1))
    world.add_service("prod", "web", image="web:v1", load_balanced=False)
    world.advance(120)
    world.deploy("prod", "web", image="web:v2")
    world.advance(4 * 3600)
    events = world.describe_service("prod", "web")["events"]
    assert len(events) == 100
    assert [e["createdAt"] for e in events] == sorted((e["createdAt"] for e in events), reverse=True)


def test_breaker_without_rollback_fails_and_stops_launching(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", circuit_breaker=(True, False), load_balanced=False)
    world.advance(120)
    world.deploy("prod", "web", image="web:v9")
    world.advance(900)
    primary = world.describe_service("prod", "web")["deployments"][0]
    assert primary["rolloutState"] == "FAILED"
    assert primary["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    failed = primary["failedTasks"]
    assert failed >= breaker_threshold(2)
    assert primary["runningCount"] == primary["pendingCount"] == 0
    world.advance(900)
    assert world.describe_service("prod", "web")["deployments"][0]["failedTasks"] == failed, "no launches after FAILED"


def test_grace_period_change_takes_effect_on_running_tasks(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("slow", "v1", AppProfile.slow_start(120))
    world.add_service("prod", "slow", image="slow:v1", grace_period=0)
    world.advance(45)
    world.client("ecs").update_service(cluster="prod", service="slow", healthCheckGracePeriodSeconds=300)
    world.advance_until(lambda: world.service_state("prod", "slow").steady, within=600)
    assert world.stopped_tasks("prod", "slow") == []


def test_more_memory_ends_oom_kills(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("api", "v1", AppProfile.memory_hungry(700))
    world.add_service("prod", "api", image="api:v1", memory=512, container_memory=512, load_balanced=False)
    world.advance(300)
    assert world.stopped_tasks("prod", "api")[0]["containers"][0]["exitCode"] == 137
    world.deploy("prod", "api", memory=1024, container_memory=1024)
    world.advance_until(lambda: world.service_state("prod", "api").steady, within=600)


def test_target_health_follows_the_tasks(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1", AppProfile.slow_start(40))
    world.add_service("prod", "web", image="web:v1", desired_count=1)
    group = world.describe_service("prod", "web")["loadBalancers"][0]["targetGroupArn"]
    elbv2 = world.client("elbv2")

    def states() -> list[tuple[str, str | None]]:
        found = elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
        return [(h["TargetHealth"]["State"], h["TargetHealth"].get("Reason")) for h in found]

    assert states() == []
    world.advance(30)
    assert states() == [("initial", "Elb.RegistrationInProgress")]
    world.advance_until(lambda: states() == [("healthy", None)], within=300)


def test_ecr_push_heals_a_missing_tag(world: World) -> None:
    world.add_fargate_cluster("prod")
    world.push_image("web", "v1")
    world.add_service("prod", "web", image="web:v1", load_balanced=False)
    world.advance(120)
    world.deploy("prod", "web", image="web:v2")
    world.advance(300)
    assert world.service_state("prod", "web").rollout_state == "IN_PROGRESS"
    world.push_image("web", "v2")
    world.advance_until(lambda: world.service_state("prod", "web").steady, within=1800)


def test_raising_group_size_adds_instances_after_a_boot_delay(world: World) -> None:
    capacity = world.add_ec2_cluster("batch", instances=1, instance_cpu=2048, instance_memory=4096, max_size=1)
    ecs, autoscaling = world.client("ecs"), world.client("autoscaling")
    assert len(ecs.list_container_instances(cluster="batch")["containerInstanceArns"]) == 1
    with pytest.raises(
        ClientError, match=r"Desired capacity:3 must be between the specified min size:1 and max size:1"
    ):
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=capacity.asg_name, DesiredCapacity=3)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=capacity.asg_name, MaxSize=3, DesiredCapacity=3)
    world.advance(60)
    assert len(ecs.list_container_instances(cluster="batch")["containerInstanceArns"]) == 1
    world.advance(60)
    arns = ecs.list_container_instances(cluster="batch")["containerInstanceArns"]
    assert len(arns) == 3
    instance = ecs.describe_container_instances(cluster="batch", containerInstances=arns[:1])["containerInstances"][0]
    registered = {r["name"]: r.get("integerValue") for r in instance["registeredResources"]}
    assert (registered["CPU"], registered["MEMORY"]) == (2048, 4096)


def test_managed_scaling_grows_the_group_within_its_maximum(world: World) -> None:
    capacity = world.add_ec2_cluster("batch", instances=1, max_size=3, managed_scaling=True)
    world.push_image("jobs", "v1")
    world.add_service("batch", "jobs", image="jobs:v1", desired_count=5, cpu=1024, memory=512, load_balanced=False)
    world.advance_until(lambda: world.service_state("batch", "jobs").running == 5, within=900)
    group = world.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[capacity.asg_name])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 3


def test_managed_scaling_stops_at_max_size_until_it_is_raised(world: World) -> None:
    capacity = world.add_ec2_cluster("batch", instances=1, max_size=1, managed_scaling=True)
    world.push_image("jobs", "v1")
    world.add_service("batch", "jobs", image="jobs:v1", desired_count=4, cpu=1024, memory=512, load_balanced=False)
    world.advance(600)
    assert world.service_state("batch", "jobs").running == 2
    world.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName=capacity.asg_name, MaxSize=2)
    world.advance_until(lambda: world.service_state("batch", "jobs").running == 4, within=900)


def test_removing_then_restoring_the_pull_policy(world: World) -> None:
    world.add_execution_role("api-execution")
    world.add_fargate_cluster("prod")
    world.push_image("api", "v1")
    world.revoke_ecr_pull("api-execution")
    world.add_service("prod", "api", image="api:v1", execution_role="api-execution", load_balanced=False)
    world.advance(120)
    assert "ecr:BatchGetImage" in world.stopped_tasks("prod", "api")[0]["stoppedReason"]
    world.grant_ecr_pull("api-execution")
    world.advance_until(lambda: world.service_state("prod", "api").steady, within=1200)


@pytest.mark.usefixtures("world")
def test_only_one_world_per_process() -> None:
    with pytest.raises(RuntimeError, match="already running"):
        World.start()


def test_static_host_ports_limit_placement(world: World) -> None:
    world.add_ec2_cluster("edge", instances=2, instance_cpu=4096, instance_memory=8192)
    world.push_image("proxy", "v1")
    world.add_service("edge", "proxy", image="proxy:v1", desired_count=3, load_balanced=False, host_port=443)
    world.advance(60)
    assert world.service_state("edge", "proxy").running == 2
    events = [e["message"] for e in world.describe_service("edge", "proxy")["events"]]
    assert any(
        m.endswith(
            "is already using a port required by your task. For more information, see the Troubleshooting section."
        )
        for m in events
    )
    task = world.client("ecs").describe_tasks(
        cluster="edge", tasks=world.client("ecs").list_tasks(cluster="edge", serviceName="proxy")["taskArns"][:1]
    )["tasks"][0]
    assert task["containers"][0]["networkBindings"] == [
        {"bindIP": "0.0.0.0", "containerPort": 8080, "hostPort": 443, "protocol": "tcp"}  # noqa: S104 - as ECS reports it
    ]


def test_force_new_deployment_replaces_every_task(web: World) -> None:
    ecs = web.client("ecs")
    before = set(ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"])
    updated = ecs.update_service(cluster="prod", service="web", forceNewDeployment=True)["service"]
    assert [d["status"] for d in updated["deployments"]] == ["PRIMARY", "ACTIVE"]
    web.advance_until(lambda: web.service_state("prod", "web").steady, within=600)
    after = set(ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"])
    assert before.isdisjoint(after) and len(after) == 2


def test_deleting_a_service_stops_its_tasks(web: World) -> None:
    ecs = web.client("ecs")
    ecs.delete_service(cluster="prod", service="web", force=True)
    web.advance(120)
    described = web.describe_service("prod", "web")
    assert (described["status"], described["desiredCount"], described["runningCount"]) == ("INACTIVE", 0, 0)
    assert ecs.list_tasks(cluster="prod")["taskArns"] == []


def test_a_missing_log_group_fails_the_start(web: World) -> None:
    web.client("logs").delete_log_group(logGroupName="/ecs/web")
    web.client("ecs").update_service(cluster="prod", service="web", forceNewDeployment=True)
    web.advance(120)
    task = web.stopped_tasks("prod", "web")[0]
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("ResourceInitializationError: failed to validate logger args:")
    assert "The specified log group does not exist" in task["stoppedReason"]
    findings = diagnose_service(web.describe_service("prod", "web"), [task])
    assert dominant_cause(findings) is Cause.LOG_CONFIG_ERROR
