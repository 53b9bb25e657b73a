"""Many accounts and Regions: one boto3 session per (account, Region), each a target of its own.

With `ECS_MEDIC_ASSUME_ROLE_ARNS` set, the targets are exactly those roles' accounts times the Regions
(`ECS_MEDIC_REGIONS`, else the SDK's Region); the agent assumes each role with STS AssumeRole, sending
`ECS_MEDIC_ASSUME_ROLE_EXTERNAL_ID`, and its own credentials are used for nothing else. Without roles
the targets are the agent's own account in each Region.

Credentials are botocore's `DeferredRefreshableCredentials`: AssumeRole runs on first use, and again
before the credentials expire (botocore refreshes 15 minutes ahead, and insists 10 minutes ahead), one
refresh per account shared by its Regions. Building targets calls nothing.

Failure isolation: `for_each_target` runs the same work in every target concurrently and returns one
result per target, each a value or the error it raised (an AccessDenied from AssumeRole, a throttle, a
timeout): one account's failure never stalls or hides the others.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, Credentials, DeferredRefreshableCredentials
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from agent.settings import Settings

T = TypeVar("T")

SESSION_NAME = "ecs-medic"
CREDENTIALS_SECONDS = 3600
_ROLE_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/.+$")


@dataclass(frozen=True, slots=True)
class Target:
    """One account in one Region, with the session that reaches it."""

    account: str
    region: str
    role_arn: str | None  # None: the agent's own credentials
    session: boto3.session.Session

    @property
    def label(self) -> str:
        """`<account>/<region>`: how logs and errors name the target."""
        return f"{self.account}/{self.region}"


class _Provider(CredentialProvider):  # type: ignore[misc]  # botocore is untyped
    """Hands botocore one set of (refreshable) credentials and nothing else."""

    METHOD = "ecs-medic-assume-role"
    CANONICAL_NAME = "custom-ecs-medic-assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def assume_role_credentials(
    base: boto3.session.Session,
    role_arn: str,
    *,
    external_id: str | None,
    region: str,
    endpoint_url: str | None = None,
    session_name: str = SESSION_NAME,
    time_fetcher: Callable[[], datetime] | None = None,
) -> DeferredRefreshableCredentials:
    """Credentials of `role_arn`, fetched with STS AssumeRole (as `base`) on first use and refreshed by
    botocore before they expire. `time_fetcher` is botocore's clock (tests pass a simulated one)."""
    lock = threading.Lock()
    clients: list[Any] = []

    def sts() -> Any:  # noqa: ANN401 - boto3 clients are untyped
        with lock:
            if not clients:
                clients.append(base.client("sts", region_name=region, endpoint_url=endpoint_url))
            return clients[0]

    def refresh() -> dict[str, str]:
        params = {"RoleArn": role_arn, "RoleSessionName": session_name, "DurationSeconds": CREDENTIALS_SECONDS}
        if external_id:
            params["ExternalId"] = external_id
        credentials = sts().assume_role(**params)["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    if time_fetcher is None:
        return DeferredRefreshableCredentials(refresh_using=refresh, method=_Provider.METHOD)
    return DeferredRefreshableCredentials(refresh_using=refresh, method=_Provider.METHOD, time_fetcher=time_fetcher)


def session_with(credentials: Credentials, region: str) -> boto3.session.Session:
    """A boto3 session in `region` whose only credentials are `credentials`."""
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([_Provider(credentials)]))
    return boto3.session.Session(botocore_session=core, region_name=region)


def account_of_role(role_arn: str) -> str:
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        raise ValueError(f"ECS_MEDIC_ASSUME_ROLE_ARNS: {role_arn!r} is not an IAM role ARN")
    return match.group("account")


def build_targets(
    settings: Settings,
    base: boto3.session.Session,
    *,
    endpoint_url: str | None = None,
    time_fetcher: Callable[[], datetime] | None = None,
) -> list[Target]:
    """Every (account, Region) the settings name, in the order given (roles, then Regions)."""
    regions = settings.regions or ((base.region_name,) if base.region_name else ())
    if not regions:
        raise ValueError("no Region to watch: set ECS_MEDIC_REGIONS or AWS_REGION")
    if not settings.assume_role_arns:
        own = base.get_credentials()
        if own is None:
            raise ValueError("no AWS credentials: configure the standard credential chain")
        identity = base.client("sts", region_name=regions[0], endpoint_url=endpoint_url).get_caller_identity()
        return [Target(str(identity["Account"]), region, None, session_with(own, region)) for region in regions]
    targets: list[Target] = []
    for role_arn in dict.fromkeys(settings.assume_role_arns):
        account = account_of_role(role_arn)
        credentials = assume_role_credentials(
            base,
            role_arn,
            external_id=settings.assume_role_external_id,
            region=regions[0],
            endpoint_url=endpoint_url,
            time_fetcher=time_fetcher,
        )
        targets.extend(Target(account, region, role_arn, session_with(credentials, region)) for region in regions)
    return targets


# --- failure isolation ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetResult(Generic[T]):
    """What the work returned in one target, or the error it raised there."""

    target: Target
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_code(self) -> str | None:
        """AWS's error code (`AccessDenied`, `ThrottlingException`...), the exception's name otherwise."""
        if self.error is None:
            return None
        if isinstance(self.error, ClientError):
            return str(self.error.response.get("Error", {}).get("Code") or type(self.error).__name__)
        return type(self.error).__name__


def for_each_target(
    targets: Sequence[Target],
    work: Callable[[Target], T],
    *,
    max_workers: int = 8,
    timeout: float | None = None,
) -> list[TargetResult[T]]:
    """`work(target)` in every target at once; one result per target, in the targets' order. A target
    still running after `timeout` seconds gets a TimeoutError result (its thread is left to finish)."""
    if not targets:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(targets))), thread_name_prefix="ecs-medic-target")
    try:
        futures: list[Future[T]] = [pool.submit(work, target) for target in targets]
        wait_for(futures, timeout=timeout)
        results: list[TargetResult[T]] = []
        for target, future in zip(targets, futures, strict=True):
            if not future.done():
                future.cancel()
                results.append(TargetResult(target, error=TimeoutError(f"{target.label}: no answer in {timeout} s")))
            elif (error := future.exception()) is not None:
                results.append(TargetResult(target, error=error))
            else:
                results.append(TargetResult(target, value=future.result()))
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
