"""Sharded replicas against the world's DynamoDB: one owner per shard, a dead replica's shards taken over
within one lease period, a lost shard acted on no more, each replica reconciling its own shards, and a
shard count that changes never acting twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import structlog

from agent.lease import LEASE_NAME, Lease, ShardLeases, shard_of
from agent.settings import Mode
from agent.sim import AppProfile, World
from agent.state import decode_tags
from tests.e2e.conftest import Run, carried_out, start_agent

TTL = 90.0
MARGIN = 20.0


class Clock:
    """Time of day and every replica's monotonic clock, moved by the test (clocks agree here)."""

    def __init__(self, world: World) -> None:
        self.start = world.now
        self.seconds = 0.0

    def now(self):
        return self.start + timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@pytest.fixture
def table(world: World) -> str:
    world.client("dynamodb").create_table(
        TableName="ecs-medic-lease",
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "ecs-medic-lease"


@pytest.fixture
def clock(world: World) -> Clock:
    return Clock(world)


@pytest.fixture
def gateway(world: World):
    return start_agent(world).reconciler.aws


def replica(gateway, table: str, clock: Clock, name: str, shards: int = 4) -> ShardLeases:
    return ShardLeases(
        gateway,
        table,
        shards,
        TTL,
        clock.now,
        structlog.get_logger(),
        holder=name,
        margin_seconds=MARGIN,
        monotonic=clock.monotonic,
    )


def rounds(*replicas: ShardLeases, count: int = 3, clock: Clock | None = None, every: float = TTL / 3) -> None:
    for _ in range(count):
        for r in replicas:
            r.renew()
        if clock is not None:
            clock.advance(every)


def test_each_shard_has_one_owner_and_the_replicas_share_them(gateway, table, clock):
    replicas = [replica(gateway, table, clock, f"replica-{c}", shards=6) for c in "abc"]
    rounds(*replicas, count=4, clock=clock)
    owned = [r.owned() for r in replicas]
    assert sorted(n for shards in owned for n in shards) == list(range(6)), "every shard has exactly one owner"
    assert [len(shards) for shards in owned] == [2, 2, 2]


def test_shards_are_a_stable_hash_of_the_service_arn():
    arns = [f"arn:aws:ecs:us-east-1:123456789012:service/prod/svc-{i:04d}" for i in range(4000)]
    counts = [0] * 8
    for arn in arns:
        counts[shard_of(arn, 8)] += 1
    assert min(counts) > 400 and max(counts) < 600, counts
    assert shard_of(arns[0], 8) == shard_of(arns[0], 8)
    assert shard_of(arns[0], 1) == 0


def test_a_dead_replicas_shards_are_taken_over_within_one_lease_period(gateway, table, clock):
    a, b = replica(gateway, table, clock, "replica-a"), replica(gateway, table, clock, "replica-b")
    rounds(a, b, count=4, clock=clock)
    assert len(a.owned()) == len(b.owned()) == 2
    b.renew()  # B's last renewal; then it dies
    died = clock.seconds
    while len(a.owned()) < 4:
        clock.advance(a.next_round_in())
        a.renew()
        assert clock.seconds - died <= TTL + 2, "not taken over within one lease period"
    assert clock.seconds - died > TTL - 1, "never before B's leases expired"
    assert all(a.fence(n) >= 1 for n in range(4))


def test_a_replica_whose_shard_lease_ran_out_stops_acting_on_it(gateway, table, clock):
    a = replica(gateway, table, clock, "replica-a", shards=2)
    rounds(a, count=1)
    assert a.owned() == {0, 1}
    clock.advance(TTL - MARGIN + 1)  # no renewal: by its own clock A may no longer write
    assert a.owned() == frozenset()
    with pytest.raises(Exception, match="does not hold"):
        a.guard(0)


def test_a_joining_replica_gets_its_share_and_the_other_stops_acting_first(gateway, table, clock):
    a = replica(gateway, table, clock, "replica-a")
    rounds(a, count=1)
    assert len(a.owned()) == 4
    b = replica(gateway, table, clock, "replica-b")
    for _ in range(6):
        b.renew()
        before = a.owned()
        a.renew()
        given = before - a.owned()
        for n in given:
            assert not a.holds(n), "released only after A stopped acting on it"
        clock.advance(TTL / 3)
    assert len(a.owned()) == len(b.owned()) == 2
    assert a.owned().isdisjoint(b.owned())


def test_another_shard_count_takes_nothing_while_this_one_acts(gateway, table, clock):
    a = replica(gateway, table, clock, "replica-a", shards=2)
    rounds(a, count=1)
    newer = replica(gateway, table, clock, "replica-new", shards=4)
    leader = Lease(gateway, table, TTL, clock.now, structlog.get_logger(), holder="single", monotonic=clock.monotonic)
    for _ in range(3):
        clock.advance(TTL / 3)
        a.renew()
        assert newer.renew() == frozenset()
        assert leader.renew() is False
    # The two-shard replicas are gone: once their count's lease expires, the new count takes over.
    clock.advance(TTL + 1)
    assert len(newer.renew()) >= 1
    assert leader.renew() is False, "the four-shard replicas now hold the count"
    item = gateway.call("dynamodb", "GetItem", {"TableName": table, "Key": {"name": {"S": LEASE_NAME}}})["Item"]
    assert item["shards"] == {"N": "4"}


def test_a_single_leader_takes_over_from_sharded_replicas_that_stopped(gateway, table, clock):
    a = replica(gateway, table, clock, "replica-a", shards=2)
    rounds(a, count=1)
    clock.advance(TTL + 1)
    leader = Lease(gateway, table, TTL, clock.now, structlog.get_logger(), holder="single", monotonic=clock.monotonic)
    assert leader.renew() is True
    assert a.renew() == frozenset(), "a sharded replica cannot renew the count under a leader"
    item = gateway.call("dynamodb", "GetItem", {"TableName": table, "Key": {"name": {"S": LEASE_NAME}}})["Item"]
    assert "shards" not in item


# --- the reconciler with shards ------------------------------------------------------------------------------


@pytest.fixture
def fleet(world: World) -> Iterator[list[str]]:
    """Ten services; three of them get a deploy that crashes."""
    world.add_fargate_cluster("prod")
    names = [f"svc-{i}" for i in range(10)]
    world.push_image("app", "v1")
    world.push_image("app", "v2", AppProfile.crashing("boom", after_seconds=3))
    for name in names:
        world.add_service("prod", name, image="app:v1", load_balanced=False, tags={"ecs-medic:managed": "true"})
    world.advance(300)
    for name in names[:3]:
        world.deploy("prod", name, image="app:v2")
    world.advance(90)
    world.requests.clear()
    yield names


def sharded(world: World, table: str, clock: Clock, name: str, shards: int = 2) -> tuple[Run, ShardLeases]:
    run = start_agent(world, Mode.ENFORCE)
    leases = replica(run.reconciler.aws, table, clock, name, shards=shards)
    run.reconciler.ownership = leases
    run.reconciler.holder = name
    return run, leases


def test_each_replica_reconciles_and_acts_on_its_own_shards(world, table, clock, fleet):
    (a, a_leases), (b, b_leases) = (sharded(world, table, clock, n) for n in ("replica-a", "replica-b"))
    for _ in range(3):
        a_leases.renew()
        b_leases.renew()
        clock.advance(TTL / 3)
    assert len(a_leases.owned()) == len(b_leases.owned()) == 1
    ra, rb = a.reconciler.run_pass(world.now), b.reconciler.run_pass(world.now)
    assert ra.services + rb.services == 10, "each service read by one replica"
    arn = world.describe_service("prod", "svc-0")["serviceArn"]
    shard = shard_of(arn, 2)
    mine = a if shard in a_leases.owned() else b
    assert any(p.service == "svc-0" for p in mine.reconciler.latest)
    assert carried_out(world, "UpdateService") == 3, "each failing service rolled back once"
    for name in fleet[:3]:
        tags = {t["key"]: t["value"] for t in world.describe_service("prod", name)["tags"]}
        state, _ = decode_tags(tags, world.now)
        assert state.verifying is not None, name
        assert state.verifying.change.action == "rollback_task_definition"
    assert a.metrics.registry.get_sample_value("ecs_medic_shards_owned") == 1


@pytest.mark.usefixtures("fleet")
def test_services_of_a_shard_whose_lease_was_lost_are_only_proposed(world, table, clock):
    run, leases = sharded(world, table, clock, "replica-a", shards=2)
    leases.renew()
    assert leases.owned() == {0, 1}
    shard = shard_of(world.describe_service("prod", "svc-0")["serviceArn"], 2)
    # The lease of svc-0's shard runs out by the replica's own clock: only that one is renewed.
    clock.advance(TTL - MARGIN - 5)
    leases._leases[1 - shard].renew()
    clock.advance(10)
    assert leases.owned() == {1 - shard}
    report = run.reconciler.run_batch("prod", ["svc-0"], world.now)
    [proposal] = [p for p in report.proposals if p.service == "svc-0" and p.plan.mutates]
    assert proposal.outcome.value == "proposed"
    assert proposal.reason == "standby: another replica holds the lease"
    assert carried_out(world, "UpdateService") == 0
    assert [r for r in world.requests.mutating() if r.service == "ecs"] == [], "no tag written either"
