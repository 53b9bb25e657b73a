"""ECS request throttling in the world: off by default; when on, one bucket per category, account and
Region at AWS's published burst and refill rate, answered as AWS answers (HTTP 400 ThrottlingException)."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from agent.sim import World

ONE_ATTEMPT = Config(retries={"total_max_attempts": 1})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def calls_until_throttled(call, limit: int = 500) -> int:
    for index in range(limit):
        try:
            call()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ThrottlingException"
            return index
    return limit


def test_off_by_default(web: World):
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    for _ in range(150):
        ecs.describe_services(cluster="prod", services=["web"])
    assert all(r.fault is None for r in web.requests.all())


def test_a_bucket_allows_its_burst_then_its_refill_rate(web: World):
    clock = FakeClock()
    web.throttling(enabled=True, clock=clock)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    describe = lambda: ecs.describe_services(cluster="prod", services=["web"])  # noqa: E731
    assert calls_until_throttled(describe) == 100, "service reads: burst 100"
    with pytest.raises(ClientError) as raised:
        describe()
    error = raised.value.response
    assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert web.requests.all()[-1].fault == "throttle"

    clock.now += 1.0
    assert calls_until_throttled(describe) == 20, "refilled at 20 a second"
    clock.now += 0.5
    assert calls_until_throttled(lambda: ecs.list_services(cluster="prod")) == 10, "ListServices shares the bucket"


def test_buckets_are_per_category(web: World):
    web.throttling(enabled=True, clock=FakeClock())
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    assert calls_until_throttled(lambda: ecs.describe_clusters(clusters=["prod"])) == 50, "cluster reads: burst 50"
    assert calls_until_throttled(lambda: ecs.list_tasks(cluster="prod")) == 100, "cluster resource reads: burst 100"
    ecs.describe_services(cluster="prod", services=["web"])  # service reads untouched
    assert web.throttle.throttled == 2


def test_the_worlds_own_calls_are_never_throttled(web: World):
    web.throttling(enabled=True, clock=FakeClock())
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    calls_until_throttled(lambda: ecs.describe_services(cluster="prod", services=["web"]))
    assert web.service_state("prod", "web").steady, "builders and readers of the world still work"
    web.deploy("prod", "web", image="web:v1")
    web.advance(60)


def test_switching_off_and_on_again_refills(web: World):
    clock = FakeClock()
    web.throttling(enabled=True, clock=clock)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    calls_until_throttled(lambda: ecs.describe_services(cluster="prod", services=["web"]))
    web.throttling(enabled=False)
    for _ in range(120):
        ecs.describe_services(cluster="prod", services=["web"])
    web.throttling(enabled=True, clock=clock)
    assert calls_until_throttled(lambda: ecs.describe_services(cluster="prod", services=["web"])) == 100


def test_buckets_are_per_account(web: World):
    web.throttling(enabled=True, clock=FakeClock())
    other = web.add_account("222222222222")
    other.add_fargate_cluster("prod")
    ours = web.client("ecs", config=ONE_ATTEMPT)
    theirs = other.client("ecs", config=ONE_ATTEMPT)
    assert calls_until_throttled(lambda: ours.describe_clusters(clusters=["prod"])) == 50
    assert calls_until_throttled(lambda: theirs.describe_clusters(clusters=["prod"])) == 50
    assert {r.account for r in web.requests.all() if r.fault == "throttle"} == {"123456789012", "222222222222"}
