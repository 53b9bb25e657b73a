"""The API budget: the agent's share of each ECS throttling bucket, per account and Region, divided among
replicas and never exceeded, checked against the simulated world's throttling at AWS's rates."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from agent.aws import AwsGateway
from agent.aws.budget import ApiBudget, _Bucket
from agent.aws.ecs_rates import BY_NAME, ECS_BUCKETS, UNLISTED, ecs_bucket
from agent.metrics import Metrics
from agent.settings import Settings
from agent.sim import World
from tests.sim.times import START

ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture
def web() -> Iterator[World]:
    with World.start(seed=7, start_time=START) as world:
        world.add_fargate_cluster("prod")
        world.push_image("web", "v1")
        world.add_service("prod", "web", image="web:v1", desired_count=2)
        world.advance(120)
        yield world


class FakeClock:
    """A clock whose sleep moves it: waiting costs no real time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(clock: FakeClock, **options: object) -> ApiBudget:
    return ApiBudget(clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def test_aws_published_rates():
    assert (ecs_bucket("DescribeServices").burst, ecs_bucket("DescribeServices").rate) == (100, 20)
    assert ecs_bucket("ListServices") is ecs_bucket("DescribeServices")
    assert ecs_bucket("DescribeTasks") is ecs_bucket("ListTasks") is ecs_bucket("DescribeContainerInstances")
    assert (ecs_bucket("DescribeTasks").burst, ecs_bucket("DescribeTasks").rate) == (100, 20)
    assert (ecs_bucket("DescribeClusters").burst, ecs_bucket("DescribeClusters").rate) == (50, 20)
    assert (ecs_bucket("UpdateService").burst, ecs_bucket("UpdateService").rate) == (50, 5)
    assert (ecs_bucket("RegisterTaskDefinition").burst, ecs_bucket("RegisterTaskDefinition").rate) == (20, 1)
    assert (ecs_bucket("TagResource").burst, ecs_bucket("TagResource").rate) == (20, 10)
    assert ecs_bucket("SomeFutureApi") is UNLISTED
    operations = [op for bucket in ECS_BUCKETS for op in bucket.operations]
    assert len(operations) == len(set(operations)), "an action draws from exactly one bucket"


def test_the_share_is_the_fraction_divided_among_replicas():
    assert BY_NAME["service-read"].burst == 100
    half = ApiBudget().share("service-read")
    assert (half.burst, half.rate) == (50, 10)
    quarter = ApiBudget(fraction=0.5, replicas=2).share("service-read")
    assert (quarter.burst, quarter.rate) == (25, 5)
    tiny = ApiBudget(fraction=0.1).share("task-definition-deletion")
    assert tiny.burst == 1, "always at least one call"
    assert tiny.rate == pytest.approx(0.1)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="fraction"):
        ApiBudget(fraction=0)
    with pytest.raises(ValueError, match="fraction"):
        ApiBudget(fraction=1.5)
    with pytest.raises(ValueError, match="replicas"):
        ApiBudget(replicas=0)


def test_the_burst_is_free_then_calls_wait_for_the_refill():
    clock = FakeClock()
    share = budget(clock)
    waits = [share.acquire(ACCOUNT, REGION, "ecs", "DescribeServices") for _ in range(53)]
    assert waits[:50] == [0.0] * 50
    assert waits[50:] == pytest.approx([0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(100.3)


def test_other_apis_pass_through():
    clock = FakeClock()
    share = budget(clock)
    assert all(share.acquire(ACCOUNT, REGION, "sqs", "ReceiveMessage") == 0 for _ in range(1000))
    assert clock.slept == []


def test_accounts_and_regions_have_their_own_buckets():
    clock = FakeClock()
    share = budget(clock)
    for account, region in ((ACCOUNT, REGION), ("222222222222", REGION), (ACCOUNT, "eu-west-1")):
        assert [share.acquire(account, region, "ecs", "DescribeClusters") for _ in range(25)] == [0.0] * 25
    assert share.remaining(ACCOUNT, REGION, "cluster-read") == pytest.approx(0)
    assert share.remaining("333333333333", REGION, "cluster-read") == 25


def test_never_more_than_burst_plus_rate_times_t_in_any_window():
    """Random arrivals (bursts and lulls): every call happens when its token exists, so any window of T
    seconds holds at most burst + rate * T calls."""
    clock = FakeClock()
    share = budget(clock)
    rng = random.Random(4)  # noqa: S311 - reproducible arrivals, not secrets
    times = []
    for _ in range(2000):
        if rng.random() < 0.05:
            clock.now += rng.uniform(0, 8)  # a lull
        share.acquire(ACCOUNT, REGION, "ecs", "DescribeTasks")
        times.append(clock.now)
    limit = share.share("cluster-resource-read")
    for start_index, start in enumerate(times):
        for window in (0.5, 1.0, 5.0, 30.0):
            count = sum(1 for t in times[start_index:] if t <= start + window)
            assert count <= limit.burst + limit.rate * window + 1e-9


def test_concurrent_callers_queue_for_their_tokens():
    clock = FakeClock()
    bucket = _Bucket(burst=5, rate=10, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        wait = bucket.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=call) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.0] * 5 + [0.1 * n for n in range(1, 21)])


def test_the_remaining_metric_reads_each_bucket_live():
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    share = budget(clock, metrics=metrics)
    for _ in range(30):
        share.acquire(ACCOUNT, REGION, "ecs", "DescribeServices")
    labels = {"account": ACCOUNT, "region": REGION, "bucket": "service-read"}
    assert metrics.registry.get_sample_value("ecs_medic_aws_budget_remaining", labels) == pytest.approx(20)
    clock.now += 1.5
    assert metrics.registry.get_sample_value("ecs_medic_aws_budget_remaining", labels) == pytest.approx(35)
    clock.now += 60
    assert metrics.registry.get_sample_value("ecs_medic_aws_budget_remaining", labels) == pytest.approx(50)


def test_settings_give_the_fraction_and_the_replicas_when_present():
    assert ApiBudget.from_settings(Settings()).fraction == 0.5
    assert ApiBudget.from_settings(Settings(api_budget_fraction=0.2)).fraction == 0.2
    assert ApiBudget.from_settings(Settings()).replicas == 1

    class WithReplicas(Settings):
        replicas: int = 3

    assert ApiBudget.from_settings(WithReplicas()).replicas == 3


def test_a_scope_is_one_account_and_region():
    clock = FakeClock()
    share = budget(clock)
    scoped = share.scope("222222222222", "eu-west-1")
    for _ in range(10):
        scoped.acquire("ecs", "DescribeClusters")
    assert share.remaining("222222222222", "eu-west-1", "cluster-read") == pytest.approx(15)


# --- against the world's throttling at AWS's rates -----------------------------------------------------------


ONE_ATTEMPT = Config(retries={"total_max_attempts": 1})


def test_the_budget_keeps_a_burst_inside_aws_rates(web: World):
    """400 DescribeServices as fast as the budget allows: none throttled, at half of AWS's rate."""
    clock = FakeClock()
    web.throttling(enabled=True, clock=clock)
    share = budget(clock)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    started = clock.now
    for _ in range(400):
        share.acquire(web.account_id, web.region, "ecs", "DescribeServices")
        ecs.describe_services(cluster="prod", services=["web"])
    assert web.throttle.throttled == 0
    assert clock.now - started == pytest.approx((400 - 50) / 10)


def test_without_the_budget_the_same_burst_is_throttled(web: World):
    clock = FakeClock()
    web.throttling(enabled=True, clock=clock)
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    throttled = 0
    for _ in range(400):
        try:
            ecs.describe_services(cluster="prod", services=["web"])
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
    assert throttled == 300


def test_replicas_together_stay_inside_the_fraction(web: World):
    clock = FakeClock()
    web.throttling(enabled=True, clock=clock)
    replicas = [budget(clock, fraction=0.9, replicas=2) for _ in range(2)]
    ecs = web.client("ecs", config=ONE_ATTEMPT)
    for index in range(600):
        replicas[index % 2].acquire(web.account_id, web.region, "ecs", "ListTasks")
        ecs.list_tasks(cluster="prod")
    assert web.throttle.throttled == 0


def test_the_gateway_consults_its_budget(web: World):
    """The gateway with a budget scope: every ECS call takes its token first, so a burst of 300 stays
    inside AWS's rates, and the budget's clock shows the wait."""
    clock = FakeClock()
    web.throttling(enabled=True, clock=clock)
    share = budget(clock)
    env = web.environment
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=web.region,
    )
    gateway = AwsGateway(
        dry_run=True,
        metrics=Metrics(CollectorRegistry()),
        session=session,
        endpoint_url=web.endpoint_url,
        sleep=lambda _seconds: None,
        rate_per_second=1e6,
        burst=1e6,
        max_attempts=1,
        budget=share.scope(web.account_id, web.region),
    )
    for _ in range(300):
        gateway.call("ecs", "DescribeServices", {"cluster": "prod", "services": ["web"]})
    assert web.throttle.throttled == 0
    assert gateway.counts[("ecs", "DescribeServices", "ok")] == 300
    assert clock.now - 100.0 == pytest.approx((300 - 50) / 10)


def test_with_a_budget_the_gateway_keeps_no_ecs_bucket_of_its_own(web: World):
    """The budget is the one rule for ECS: a burst its share allows (50 service reads) goes through at
    once, though the gateway's own bucket (burst 20) would have made the 21st wait; other APIs still
    wait for the gateway's bucket."""
    clock = FakeClock()
    share = budget(clock)
    env = web.environment
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=web.region,
    )
    waits: list[float] = []
    gateway = AwsGateway(
        dry_run=True,
        metrics=Metrics(CollectorRegistry()),
        session=session,
        endpoint_url=web.endpoint_url,
        sleep=waits.append,
        clock=clock,
        rate_per_second=10,
        burst=20,
        max_attempts=1,
    )
    gateway.apply_budget(share.scope(web.account_id, web.region))
    for _ in range(40):
        gateway.call("ecs", "DescribeServices", {"cluster": "prod", "services": ["web"]})
    assert waits == [], "no wait but the budget's"
    assert clock.slept == [], "inside the budget's burst"
    for _ in range(21):
        gateway.call("sts", "GetCallerIdentity", {})
    assert len(waits) == 1, "the gateway's own bucket still paces other APIs"
