"""`World`: a simulated AWS account whose ECS behaves, and fails, like the real one.

moto serves ECS, ECR, EC2, Auto Scaling, ELBv2, CloudWatch, CloudWatch Logs, IAM, STS, SQS,
EventBridge and DynamoDB on one local port; the world adds the runtime moto lacks and a simulated
clock. Clients (the agent, the `aws` CLI, tests) use only public AWS APIs through `endpoint_url`;
nothing they can see says it is a simulation.

    with World.start(seed=7) as world:
        world.add_fargate_cluster("prod")
        world.push_image("web", "v1")
        world.add_service("prod", "web", image="web:v1")
        world.advance(300)                      # five simulated minutes, in 5-second ticks
        world.client("ecs").describe_services(cluster="prod", services=["web"])

The world is its default account (its builders are the `Account`'s); `add_account` adds more on the
same endpoint and clock, reached with credentials from AssumeRole. `throttling` switches on ECS's
request throttling at AWS's published rates; `event_delivery` makes EventBridge late, duplicating and
out of order. Only one world runs per process at a time: moto's backends are process-wide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar, Self

import boto3
from werkzeug.serving import BaseWSGIServer, make_server

from agent.sim import moto_bridge as bridge
from agent.sim import sts
from agent.sim.account import (
    DEFAULT_EXECUTION_ROLE,
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    REGION,
    Account,
    ServiceState,
)
from agent.sim.eventbridge import Delivery, DeliveryProfile
from agent.sim.faults import FaultInjector
from agent.sim.insights import ContainerInsights
from agent.sim.middleware import WorldMiddleware
from agent.sim.recording import RequestLog
from agent.sim.throttle import Throttle

if TYPE_CHECKING:
    from agent.sim.middleware import ApiCall, InvokeJson, Reply

__all__ = ["DEFAULT_EXECUTION_ROLE", "REGION", "Account", "ServiceState", "World"]

DEFAULT_TICK_SECONDS = 5.0


class World(Account):
    """The simulated estate: an HTTP endpoint, a clock, its default account's builders, more accounts."""

    _running: ClassVar[World | None] = None
    account_id: str = bridge.ACCOUNT_ID

    def __init__(self, *, seed: int, start_time: datetime, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self.seed = seed
        self.faults = FaultInjector(seed)
        self.requests = RequestLog()
        self.throttle = Throttle()
        self.delivery = Delivery(seed)
        self.endpoint_url = ""
        self._insights = ContainerInsights(REGION)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        super().__init__(
            account_id=bridge.ACCOUNT_ID, lock=threading.RLock(), endpoint=self, seed=seed, start_time=start_time
        )
        self._accounts: dict[str, Account] = {self.account_id: self}
        self.approver_role = "ecs-medic-approver"
        self.approval_key_id = ""

    # --- lifecycle -------------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        seed: int = 0,
        start_time: datetime | None = None,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> World:
        """Reset the emulated account, serve it on `host:port` (0: any free port) and build the network.

        `start_time` is the simulated clock's start (default: now, to the second); `seed` makes every id
        and every fault decision reproducible.
        """
        if cls._running is not None:
            raise RuntimeError("a World is already running in this process; stop it first")
        begin = start_time or datetime.now(UTC).replace(microsecond=0)
        world = cls(seed=seed, start_time=begin, tick_seconds=tick_seconds)
        bridge.reset(seed)
        bridge.install_target_health(world._target_health)
        app = WorldMiddleware(
            bridge.wsgi_app(),
            lock=world._lock,
            faults=world.faults,
            log=world.requests,
            clock=lambda: world.now,
            hooks=world,
            throttle=world.throttle,
            account_of=bridge.account_of_access_key,
        )
        world._server = make_server(host, port, app, threaded=True, request_handler=bridge.QuietRequestHandler)
        world.endpoint_url = f"http://{host}:{world._server.server_address[1]}"
        world._thread = threading.Thread(
            target=world._server.serve_forever, kwargs={"poll_interval": 0.05}, name="ecs-sim-server", daemon=True
        )
        world._thread.start()
        cls._running = world
        try:
            world._build_network()
            world.approval_key_id = world.add_approval_key(world.approver_role)
        except BaseException:
            world.stop()
            raise
        return world

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        bridge.uninstall_target_health()
        if World._running is self:
            World._running = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def environment(self) -> dict[str, str]:
        """The environment variables that point an AWS SDK or the CLI at this world (its default account)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        }

    def approver_environment(self, session_name: str = "alice") -> dict[str, str]:
        """The environment of a person who assumed the approver role (for `ecs-medic approve`)."""
        arn = f"arn:aws:iam::{self.account_id}:role/{self.approver_role}"
        credentials = self.client("sts").assume_role(RoleArn=arn, RoleSessionName=session_name)["Credentials"]
        return {
            **self.environment,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }

    def approver_session(self, session_name: str = "alice") -> boto3.session.Session:
        environment = self.approver_environment(session_name)
        return boto3.session.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=environment["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )

    # --- accounts --------------------------------------------------------------------------------------------

    def add_account(self, account_id: str) -> Account:
        """Another account on this world's endpoint and clock, with its own network and execution role.
        Reach it as a client does: assume a role it trusts (`Account.add_assumable_role`)."""
        if len(account_id) != 12 or not account_id.isdigit():
            raise ValueError(f"an AWS account id is 12 digits, got {account_id!r}")
        if account_id in self._accounts:
            raise ValueError(f"account {account_id} is already in the world")
        account = Account(
            account_id=account_id,
            lock=self._lock,
            endpoint=self,
            seed=self.seed * 1_000_003 + int(account_id) % 1_000_003,
            start_time=self.now,
        )
        self._accounts[account_id] = account
        account._build_network()
        return account

    @property
    def accounts(self) -> dict[str, Account]:
        """Every account of the world by id, the default one first."""
        return dict(self._accounts)

    # --- the API's behaviour -----------------------------------------------------------------------------------

    def throttling(self, *, enabled: bool = True, clock: Callable[[], float] | None = None) -> Throttle:
        """Throttle ECS requests per account, Region and category at AWS's published rates (every bucket
        starts full). Buckets refill on the wall clock unless `clock` is given (seconds, any origin)."""
        self.throttle.configure(enabled=enabled, clock=clock)
        return self.throttle

    def event_delivery(self, profile: DeliveryProfile) -> Delivery:
        """How EventBridge delivers ECS's events from now on (`DeliveryProfile.realistic()`: late,
        sometimes twice, out of order). Seeded by the world's seed."""
        self.delivery.profile = profile
        return self.delivery

    # middleware hooks: STS first, then the runtime of the request's account.

    def before(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        if call.service == "sts" and call.operation == "AssumeRole":
            return self._assume_role(call)
        account = self._accounts.get(call.account)
        if account is None:
            return None
        with bridge.in_account(account.account_id):
            return account.hooks.before(call, invoke)

    def after(self, call: ApiCall, reply: Reply, invoke: InvokeJson) -> bytes | None:
        if call.service == "sts" and call.operation == "AssumeRole":
            duration = int(call.params.get("DurationSeconds") or sts.DEFAULT_DURATION_SECONDS)
            return sts.with_expiration(reply.body, self.now, duration)
        account = self._accounts.get(call.account)
        if account is None:
            return None
        with bridge.in_account(account.account_id):
            return account.hooks.after(call, reply, invoke)

    def _assume_role(self, call: ApiCall) -> Reply | None:
        role_arn = str(call.params.get("RoleArn", ""))
        caller = bridge.caller_arn(call.access_key, call.region)
        target = sts.role_account_and_name(role_arn)
        if target is None:
            return None  # moto answers a malformed ARN
        with bridge.in_account(target[0]):
            document = bridge.role_trust_policy(target[1])
        policy = sts.parse_policy(document) if document is not None else None
        external_id = call.params.get("ExternalId")
        if policy is None or not sts.trusts(
            policy,
            caller_account=call.account,
            caller_arn=caller,
            external_id=str(external_id) if external_id else None,
        ):
            return sts.access_denied(caller, role_arn)
        return None

    def _target_health(self, target_group_arn: str, target_id: str) -> tuple[str, str | None, str | None] | None:
        account = self._accounts.get(target_group_arn.split(":")[4] if target_group_arn.count(":") >= 5 else "")
        return account._runtime.target_health(target_group_arn, target_id) if account is not None else None

    # --- time ------------------------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The simulated time; every timestamp the world writes comes from it."""
        return self._runtime.now

    def advance(self, seconds: float) -> None:
        """Run every account's runtime for `seconds` of simulated time, in ticks of `tick_seconds`, and
        deliver the events they send. Never sleeps."""
        remaining = seconds
        while remaining > 1e-9:
            step = min(self.tick_seconds, remaining)
            with self._lock:
                self._tick(self.now + timedelta(seconds=step))
            remaining -= step

    def _tick(self, now: datetime) -> None:
        for account in self._accounts.values():
            with bridge.in_account(account.account_id):
                account._runtime.tick(now)
                events = account._runtime.take_events()
                if events and bridge.has_event_rules(account.region):
                    self.delivery.send(account.account_id, account.region, events, now)
        # Container Insights of the world's own account (the one the scenarios use).
        self._insights.collect(now, self._runtime.services.values(), self._runtime.profiles)
        for account_id, region, event in self.delivery.due(now):
            with bridge.in_account(account_id):
                bridge.deliver_event(region, event)

    def advance_until(self, condition: Callable[[], bool], *, within: float, step: float | None = None) -> float:
        """Advance until `condition()` holds (checked after each step, outside the world's lock, so it
        may call the API); returns the simulated seconds it took. Raises TimeoutError after `within`."""
        step = step or self.tick_seconds * 2
        elapsed = 0.0
        while not condition():
            if elapsed >= within:
                raise TimeoutError(f"condition not met within {within:.0f} simulated seconds")
            self.advance(step)
            elapsed += step
        return elapsed
