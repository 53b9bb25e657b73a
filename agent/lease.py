"""Leader election between replicas, and shards: fenced lease items in a DynamoDB table.

Only the holder acts; the others observe and propose, so a second replica is a warm standby, never a
second pair of hands. Three things make a stalled former leader harmless:

- **A version (fencing token).** Every takeover increments the item's `version`; the holder's writes
  carry it in their intent, so a change started under an older token is recognised as such.
- **A local deadline.** The holder believes it holds the lease only until `ttl - margin` after the
  start of its last successful renewal, by its own monotonic clock. `margin` covers one request in
  flight (connect and read timeouts) and clock skew, so a write sent while the holder believes it
  holds the lease lands before anyone else may take the lease over.
- **A check before every write** (`guard`), and renewal in the background while the agent works, so
  a slow pass neither loses the lease nor keeps acting after losing it.

Conditional writes make it safe without clocks agreeing closely: a takeover needs the item to have
expired by the taker's clock, and the holder stops writing `margin` seconds before that by its own.

**Shards** (`ShardLeases`, `ECS_MEDIC_SHARDS` > 1) split the fleet by a hash of each service's ARN and
give each shard a lease of its own (`ecs-medic-shard-<n>`), with the same three guarantees: one owner
per shard, its version the fencing token of writes to that shard's services, its guard before each.
Each replica renews what it holds, heartbeats a member item, and takes free shards up to its fair share
(the shards divided by the live replicas, rounded up), in an order of its own (rendezvous hashing), so
that replicas rarely reach for the same one. A replica holding more than its share while another holds
less than its floor gives back the excess (it stops acting on each first, then releases it). A dead
replica's shards expire within one lease period of its last renewal; the survivors wake when they do
and take them.

The shard count itself is a lease: with several shards, the leader item holds the count, renewed by
every replica of that count. Replicas of another count (a rollout that changes `ECS_MEDIC_SHARDS`,
or a single leader) take no shard until the item expired: two partitions of the fleet never act at once.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.errors import LeaseLostError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

LEASE_NAME = "ecs-medic-leader"
SHARD_LEASE = "ecs-medic-shard-{}"
MEMBER = "ecs-medic-member/{}"
DEFAULT_MARGIN_SECONDS = 40.0  # one request's connect (5 s) and read (30 s) timeouts, and 5 s of skew
MAX_SHARDS = 256
STARVING_ROUND_SECONDS = 5.0


def default_holder() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    aws: Any  # agent.aws.AwsGateway
    table: str
    ttl_seconds: float
    now: Callable[[], datetime]
    log: Any
    holder: str = field(default_factory=default_holder)
    name: str = LEASE_NAME
    margin_seconds: float = DEFAULT_MARGIN_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    version: int = 0  # the fencing token of this replica's tenure (0: never held)
    _valid_until: float = field(default=float("-inf"), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.margin_seconds >= self.ttl_seconds:
            raise ValueError(f"the lease's ttl ({self.ttl_seconds} s) must exceed its margin ({self.margin_seconds} s)")

    @property
    def held(self) -> bool:
        """True while this replica may act: its last renewal is recent enough by its own clock."""
        return self.monotonic() < self._valid_until

    def guard(self) -> None:
        """Called before every write: raises `LeaseLostError` when this replica may not write now."""
        if not self.held:
            raise LeaseLostError(f"{self.holder} does not hold the {self.name} lease")

    def renew(self) -> bool:
        """Take or keep the lease; True when this replica holds it now."""
        with self._lock:
            sent = self.monotonic()
            was_held = sent < self._valid_until
            now = int(self.now().timestamp())
            expires = str(int(now + self.ttl_seconds))
            version = self._keep(now, expires) or self._take(now, expires)
            if version is None:
                self._valid_until = float("-inf")
            else:
                self._valid_until = sent + self.ttl_seconds - self.margin_seconds
                self.version = version
            held = version is not None
            if held != was_held:
                self.log.info(
                    "leadership_changed", lease=self.name, holder=self.holder, leader=held, fence=self.version
                )
            return held

    def _keep(self, now: int, expires: str) -> int | None:
        """Push the expiry of a lease this replica holds; its version (fencing token) stays."""
        return self._update(
            "SET #e = :expires",
            "#h = :me AND #e >= :now",
            {":expires": {"N": expires}, ":me": {"S": self.holder}, ":now": {"N": str(now)}},
            {"#e": "expires", "#h": "holder"},
        )

    def _take(self, now: int, expires: str) -> int | None:
        """Take a lease nobody holds (or whose holder stopped renewing): a new version."""
        # A shard count left by sharded replicas goes: this item is a leader lease again.
        return self._update(
            "SET #h = :me, #e = :expires REMOVE #s ADD #v :one",
            "attribute_not_exists(#n) OR #e < :now",
            {":expires": {"N": expires}, ":me": {"S": self.holder}, ":now": {"N": str(now)}, ":one": {"N": "1"}},
            {"#e": "expires", "#h": "holder", "#v": "version", "#n": "name", "#s": "shards"},
        )

    def _update(self, expression: str, condition: str, values: dict[str, Any], names: dict[str, str]) -> int | None:
        try:
            response = self.aws.call(
                "dynamodb",
                "UpdateItem",
                {
                    "TableName": self.table,
                    "Key": {"name": {"S": self.name}},
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                    "ReturnValues": "ALL_NEW",
                },
                idempotent=True,
            )
        except Exception as error:  # noqa: BLE001 - not holding the lease is the safe answer to any failure
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            if code != "ConditionalCheckFailedException":
                self.log.warning("lease_failed", table=self.table, error=f"{type(error).__name__}: {error}")
            return None
        attributes = response.get("Attributes") or {}
        return int((attributes.get("version") or {}).get("N") or 0)

    def keep_renewing(self, stop: threading.Event) -> threading.Thread:
        """Renew every third of the ttl in the background until `stop`, so a long pass keeps the lease."""

        def renew_until_stopped() -> None:
            while not stop.wait(self.ttl_seconds / 3):
                self.renew()

        thread = threading.Thread(target=renew_until_stopped, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        with self._lock:
            if not self.held:
                return
            self._valid_until = float("-inf")
        try:
            self.aws.call(
                "dynamodb",
                "UpdateItem",
                {
                    "TableName": self.table,
                    "Key": {"name": {"S": self.name}},
                    "UpdateExpression": "SET #e = :zero",
                    "ConditionExpression": "#h = :me",
                    "ExpressionAttributeNames": {"#e": "expires", "#h": "holder"},
                    "ExpressionAttributeValues": {":me": {"S": self.holder}, ":zero": {"N": "0"}},
                },
                idempotent=True,
            )
        except Exception as error:  # noqa: BLE001 - the lease expires on its own
            self.log.warning("lease_release_failed", error=f"{type(error).__name__}: {error}")


# --- shards ----------------------------------------------------------------------------------------------------


def shard_of(service_arn: str, shards: int) -> int:
    """The shard of a service: a stable hash of its ARN (the same in every replica and release)."""
    if shards <= 1:
        return 0
    digest = hashlib.sha256(service_arn.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def _preference(holder: str, shard: int) -> bytes:
    """Rendezvous hashing: each replica ranks the shards in an order of its own."""
    return hashlib.sha256(f"{holder}/{shard}".encode()).digest()


@dataclass(frozen=True, slots=True)
class _Item:
    name: str
    holder: str
    expires: int
    shards: int | None


@dataclass
class ShardLeases:
    """This replica's leases on the fleet's shards (see the module's docstring). With one shard it is
    the leader lease itself."""

    aws: Any  # agent.aws.AwsGateway
    table: str
    shards: int
    ttl_seconds: float
    now: Callable[[], datetime]
    log: Any
    holder: str = field(default_factory=default_holder)
    margin_seconds: float = DEFAULT_MARGIN_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    _leases: list[Lease] = field(default_factory=list, repr=False)
    _count: Lease | None = field(default=None, repr=False)  # the shard count's own lease (shards > 1)
    _free_since: dict[int, int] = field(default_factory=dict, repr=False)  # shard -> first seen free (epoch s)
    _next_check: int | None = field(default=None, repr=False)  # epoch s: a foreign lease expires then
    _starving: bool = field(default=False, repr=False)  # this replica holds less than its share
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"shards must be between 1 and {MAX_SHARDS}, got {self.shards}")

        def lease(name: str, holder: str) -> Lease:
            return Lease(
                self.aws,
                self.table,
                self.ttl_seconds,
                self.now,
                self.log,
                holder=holder,
                name=name,
                margin_seconds=self.margin_seconds,
                monotonic=self.monotonic,
            )

        if self.shards == 1:
            self._leases = [lease(LEASE_NAME, self.holder)]
        else:
            self._leases = [lease(SHARD_LEASE.format(n), self.holder) for n in range(self.shards)]
            self._count = _CountLease(
                self.aws,
                self.table,
                self.ttl_seconds,
                self.now,
                self.log,
                holder=f"shards:{self.shards}",
                name=LEASE_NAME,
                margin_seconds=self.margin_seconds,
                monotonic=self.monotonic,
                shards=self.shards,
            )

    # --- what the reconciler asks ------------------------------------------------------------------------------

    def shard_of(self, service_arn: str) -> int:
        return shard_of(service_arn, self.shards)

    def holds(self, shard: int) -> bool:
        return self._leases[shard].held

    def guard(self, shard: int) -> None:
        """Before every write to a service of `shard`: raises `LeaseLostError` unless this replica holds it."""
        self._leases[shard].guard()

    def fence(self, shard: int) -> int:
        return self._leases[shard].version

    def owned(self) -> frozenset[int]:
        return frozenset(n for n, lease in enumerate(self._leases) if lease.held)

    @property
    def held(self) -> bool:
        """This replica holds at least one shard (the `ecs_medic_is_leader` of one shard)."""
        return bool(self.owned())

    # --- the round ----------------------------------------------------------------------------------------------

    def renew(self) -> frozenset[int]:
        """Keep what this replica holds, take its share of the free shards, give back what another needs;
        returns the shards held now."""
        with self._lock:
            if self.shards == 1:
                self._leases[0].renew()
                return self.owned()
            return self._round()

    def _round(self) -> frozenset[int]:
        assert self._count is not None  # noqa: S101 - shards > 1
        if not self._count.renew():
            # Replicas of another shard count (or a single leader) act: hold nothing until they stop.
            for n in sorted(self.owned()):
                self._give_back(n, why="another shard count is active")
            return self.owned()
        now = int(self.now().timestamp())
        self._heartbeat(now)
        try:
            items = self._scan()
        except Exception as error:  # noqa: BLE001 - keep what is held; try the rest next round
            self.log.warning("lease_failed", table=self.table, error=f"{type(error).__name__}: {error}")
            for n in sorted(self.owned()):
                self._leases[n].renew()
            return self.owned()
        for n in sorted(self.owned()):
            self._leases[n].renew()
        members = {i.name for i in items if i.name.startswith(MEMBER.format("")) and i.expires >= now}
        members.add(MEMBER.format(self.holder))
        free, holders = self._survey(items, now)
        held = set(self.owned())
        fair = math.ceil(self.shards / len(members))
        for n in sorted(free, key=lambda n: _preference(self.holder, n), reverse=True):
            # Take up to the fair share; a shard nobody took for a whole round is taken whatever the share.
            stale = now - self._free_since.get(n, now) >= self.ttl_seconds / 3
            if (len(held) < fair or stale) and self._leases[n].renew():
                held.add(n)
                self._free_since.pop(n, None)
        floor = self.shards // len(members)
        self._starving = len(held) < floor
        starving = any(count < floor for count in holders.values()) or len(holders) + 1 < len(members)
        if len(held) > fair and starving:
            for n in sorted(held, key=lambda n: _preference(self.holder, n))[: len(held) - fair]:
                self._give_back(n, why="another replica holds less than its share")
        return self.owned()

    def _survey(self, items: list[_Item], now: int) -> tuple[list[int], dict[str, int]]:
        """The shards nobody holds, and how many each other replica holds; notes when the soonest of
        theirs expires (the next round comes then)."""
        by_name = {i.name: i for i in items}
        held = self.owned()
        free: list[int] = []
        holders: dict[str, int] = {}
        self._next_check = None
        for n in range(self.shards):
            item = by_name.get(SHARD_LEASE.format(n))
            if n in held:
                continue
            if item is None or item.expires < now:
                free.append(n)
                self._free_since.setdefault(n, now)
                continue
            self._free_since.pop(n, None)
            holders[item.holder] = holders.get(item.holder, 0) + 1
            expiry = item.expires + 1
            self._next_check = expiry if self._next_check is None else min(self._next_check, expiry)
        return free, holders

    def _give_back(self, shard: int, *, why: str) -> None:
        """Stop acting on the shard first (the local deadline goes), then release its lease."""
        self.log.info("shard_released", shard=shard, holder=self.holder, why=why)
        self._leases[shard].release()

    def _heartbeat(self, now: int) -> None:
        """This replica's member item: how the others count the live replicas (for the fair share)."""
        try:
            self.aws.call(
                "dynamodb",
                "PutItem",
                {
                    "TableName": self.table,
                    "Item": {
                        "name": {"S": MEMBER.format(self.holder)},
                        "holder": {"S": self.holder},
                        "expires": {"N": str(int(now + self.ttl_seconds))},
                    },
                },
                idempotent=True,
            )
        except Exception as error:  # noqa: BLE001 - the others count one replica fewer for a while
            self.log.warning("lease_failed", table=self.table, error=f"{type(error).__name__}: {error}")

    def _scan(self) -> list[_Item]:
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        items: list[_Item] = []
        while True:
            page = self.aws.call("dynamodb", "Scan", request)
            for raw in page.get("Items") or []:
                shards = (raw.get("shards") or {}).get("N")
                items.append(
                    _Item(
                        str((raw.get("name") or {}).get("S") or ""),
                        str((raw.get("holder") or {}).get("S") or ""),
                        int(float((raw.get("expires") or {}).get("N") or 0)),
                        int(shards) if shards is not None else None,
                    )
                )
            if not page.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def next_round_in(self) -> float:
        """Seconds until the next round: a third of the ttl; sooner when another replica's shard lease
        expires (a dead replica's shards are taken as soon as they are free); every few seconds while
        this replica holds less than its share (a replica that joins gets its shards as soon as the
        others give them back)."""
        period = self.ttl_seconds / 3
        if self._starving:
            period = min(period, STARVING_ROUND_SECONDS)
        if self._next_check is None:
            return period
        return max(1.0, min(period, self._next_check - self.now().timestamp()))

    def keep_renewing(self, stop: threading.Event) -> threading.Thread:
        """Rounds in the background until `stop`, so a long pass keeps its shards."""

        def renew_until_stopped() -> None:
            while not stop.wait(self.next_round_in()):
                try:
                    self.renew()
                except Exception:  # a bug: logged, and the next round tries again (leases lapse safely)
                    self.log.exception("lease_round_failed")

        thread = threading.Thread(target=renew_until_stopped, name="shard-leases", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """At shutdown: every shard goes back at once (the member item expires on its own)."""
        for n in sorted(self.owned()):
            self._give_back(n, why="shutting down")


@dataclass
class _CountLease(Lease):
    """The shard count as a lease on the leader item: every replica of this count renews it; replicas of
    another count (or a single leader) cannot take it before it expires."""

    shards: int = 2

    def _keep(self, now: int, expires: str) -> int | None:
        return self._update(
            "SET #e = :expires, #h = :me",
            "#s = :n AND #e >= :now",
            {
                ":expires": {"N": expires},
                ":me": {"S": self.holder},
                ":now": {"N": str(now)},
                ":n": {"N": str(self.shards)},
            },
            {"#e": "expires", "#h": "holder", "#s": "shards"},
        )

    def _take(self, now: int, expires: str) -> int | None:
        return self._update(
            "SET #h = :me, #e = :expires, #s = :n ADD #v :one",
            "attribute_not_exists(#n) OR #e < :now",
            {
                ":expires": {"N": expires},
                ":me": {"S": self.holder},
                ":now": {"N": str(now)},
                ":n": {"N": str(self.shards)},
                ":one": {"N": "1"},
            },
            {"#e": "expires", "#h": "holder", "#s": "shards", "#v": "version", "#n": "name"},
        )
