"""The gateway's dry-run guard against the simulated world: reads pass, writes are refused before they
are sent, and only the one write a caller explicitly allows gets through."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from prometheus_client import CollectorRegistry

from agent.aws import AwsGateway
from agent.aws.gateway import DryRunViolationError
from agent.metrics import Metrics
from agent.sim import World
from tests.sim.times import START


@pytest.fixture
def world() -> Iterator[World]:
    with World.start(seed=3, start_time=START) as started:
        started.add_fargate_cluster("prod")
        yield started


def gateway(world: World, **options: object) -> AwsGateway:
    env = world.environment
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    )
    return AwsGateway(
        metrics=Metrics(CollectorRegistry()),
        session=session,
        endpoint_url=world.endpoint_url,
        sleep=lambda _seconds: None,
        **options,  # type: ignore[arg-type]
    )


def test_dry_run_refuses_writes_before_sending_them(world):
    aws = gateway(world, dry_run=True)
    world.requests.clear()
    assert aws.call("ecs", "ListClusters", {})["clusterArns"]
    with pytest.raises(DryRunViolationError):
        aws.call("ecs", "TagResource", {"resourceArn": "arn:aws:ecs:us-east-1:123456789012:cluster/prod", "tags": []})
    with pytest.raises(DryRunViolationError):  # the botocore hook refuses a client used directly, too
        aws.client("ecs").delete_cluster(cluster="prod")
    assert world.requests.mutating() == []
    assert aws.counts[("ecs", "TagResource", "blocked")] == 1


def test_dry_run_lets_through_exactly_the_write_the_caller_allows(world):
    topic = world.client("sns").create_topic(Name="ecs-medic")["TopicArn"]
    other = world.client("sns").create_topic(Name="elsewhere")["TopicArn"]
    aws = gateway(
        world,
        dry_run=True,
        dry_run_allows=lambda api, operation, params: (
            (api, operation, params.get("TopicArn")) == ("sns", "Publish", topic)
        ),
    )
    world.requests.clear()
    assert aws.call("sns", "Publish", {"TopicArn": topic, "Message": "hello"})["MessageId"]
    assert aws.client("sns").publish(TopicArn=topic, Message="again")["MessageId"]
    with pytest.raises(DryRunViolationError):
        aws.call("sns", "Publish", {"TopicArn": other, "Message": "hello"})
    with pytest.raises(DryRunViolationError):
        aws.client("sns").publish(TopicArn=other, Message="hello")
    with pytest.raises(DryRunViolationError):
        aws.call("sns", "DeleteTopic", {"TopicArn": topic})
    assert [(r.operation) for r in world.requests.mutating()] == ["Publish", "Publish"]
