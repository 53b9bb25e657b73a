"""The one layer that talks to AWS: every call is budgeted, retried, counted, and dry-run guarded.

- Dry-run is enforced here, twice: `call` refuses any operation that is not a read, and a botocore
  `before-call` hook on every client refuses it again, so no code path can slip a write through.
- ECS throttles per account and Region with token buckets per category (service reads, task reads,
  cluster reads), shared with every other caller. With an API budget (`agent.aws.budget`, one scope per
  account and Region) every ECS call waits for a token of the agent's share of its bucket; without one,
  and for other APIs, a client-side bucket per category keeps the agent well below AWS's limits.
- Throttling and 5xx are retried with jittered exponential backoff (tenacity); nothing else is:
  a 4xx is a fact about the request, and retrying it only hides it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from agent.errors import AmbiguousWriteError

if TYPE_CHECKING:
    from agent.aws.budget import ScopedBudget
    from agent.metrics import Metrics

READ_PREFIXES = ("Describe", "List", "Get", "BatchGet")
# Reads not named like one: a queue's messages, a table's query or scan, a signature's check,
# IAM's policy simulator.
READ_OPERATIONS = frozenset({"ReceiveMessage", "Verify", "Query", "Scan", "SimulatePrincipalPolicy"})
# Errors that prove a request was not carried out, so sending it again cannot make a change twice.
_NOT_SENT = (EndpointConnectionError, ConnectTimeoutError)
# Errors after which the request may or may not have been carried out.
_MAYBE_SENT = (ConnectionClosedError, ReadTimeoutError)
_THROTTLED = ThrottledRetryableChecker()

# ECS's own throttling categories (API reference, "Request throttling"); other services share one.
_ECS_CATEGORIES = {
    "ListClusters": "cluster-read",
    "DescribeClusters": "cluster-read",
    "ListServices": "service-read",
    "DescribeServices": "service-read",
    "ListTasks": "task-read",
    "DescribeTasks": "task-read",
    "ListContainerInstances": "task-read",
    "DescribeContainerInstances": "task-read",
}


def is_read_only(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES) or operation in READ_OPERATIONS


class DryRunViolationError(RuntimeError):
    """A mutating call attempted in dry-run. Always a bug: decide never plans to apply in dry-run."""


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def is_throttling(error: BaseException) -> bool:
    """botocore's own classification (every throttling code it knows), and HTTP 429 however it is worded."""
    if not isinstance(error, ClientError):
        return False
    return _status(error) == 429 or bool(_THROTTLED.is_retryable(RetryContext(1, parsed_response=error.response)))


def is_retryable(error: BaseException) -> bool:
    """For reads and idempotent writes: throttling, 5xx and connection trouble are worth another try."""
    if isinstance(error, _NOT_SENT + _MAYBE_SENT) or is_throttling(error):
        return True
    return isinstance(error, ClientError) and _status(error) >= 500


def is_not_carried_out(error: BaseException) -> bool:
    """For writes that are not idempotent: only errors that prove nothing happened may be retried."""
    return isinstance(error, _NOT_SENT) or is_throttling(error)


def is_ambiguous(error: BaseException) -> bool:
    return isinstance(error, _MAYBE_SENT) or (isinstance(error, ClientError) and _status(error) >= 500)


class TokenBucket:
    """`rate` calls per second sustained, `burst` at once; `acquire` waits for a token."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting if none is left; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class AwsGateway:
    """boto3 behind one door. `call(api, operation, params)` is the only way the agent reaches AWS."""

    def __init__(
        self,
        *,
        dry_run: bool,
        metrics: Metrics,
        dry_run_allows: Callable[[str, str, Mapping[str, Any]], bool] | None = None,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
        rate_per_second: float = 10.0,
        burst: float = 20.0,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        budget: ScopedBudget | None = None,
    ) -> None:
        self.dry_run = dry_run
        self._budget = budget  # the agent's share of ECS's throttling buckets in this account and Region
        # The one kind of write dry-run may make (e.g. publishing a notification to the configured
        # topic): `(api, operation, params) -> allowed`. Everything else stays refused.
        self._dry_run_allows = dry_run_allows or (lambda _api, _operation, _params: False)
        self.metrics = metrics
        self.session = session or boto3.session.Session()
        self._endpoint_url = endpoint_url  # None: boto3's own resolution (AWS_ENDPOINT_URL, then AWS)
        self._sleep = sleep
        self._clock = clock
        self._max_attempts = max_attempts
        self._rate, self._burst = rate_per_second, burst
        self._buckets: dict[str, TokenBucket] = {}
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = {}

    def apply_budget(self, budget: ScopedBudget | None) -> None:
        """Consult this budget (the agent's share of ECS's buckets in this account and Region) from now on."""
        self._budget = budget

    @property
    def budget(self) -> ScopedBudget | None:
        return self._budget

    @property
    def region(self) -> str | None:
        region = self.session.region_name
        return str(region) if region else None

    def client(self, api: str) -> Any:  # noqa: ANN401 - boto3 clients are untyped
        with self._lock:
            if api not in self._clients:
                # Retries are ours (tenacity), so botocore makes exactly one attempt per call.
                config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
                client = self.session.client(api, config=config, endpoint_url=self._endpoint_url)
                client.meta.events.register("before-parameter-build.*.*", self._guard)
                self._clients[api] = client
            return self._clients[api]

    def _refused(self, api: str, operation: str, params: Mapping[str, Any]) -> bool:
        return self.dry_run and not is_read_only(operation) and not self._dry_run_allows(api, operation, params)

    # botocore's hook signature: `model` is the operation model, `params` the call's own parameters.
    def _guard(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:  # noqa: ANN401
        if self._refused(model.service_model.service_name, model.name, params):
            raise DryRunViolationError(f"dry-run: refused {model.service_model.service_name}:{model.name}")

    def _bucket(self, api: str, operation: str) -> TokenBucket:
        category = _ECS_CATEGORIES.get(operation, "other") if api == "ecs" else api
        with self._lock:
            if category not in self._buckets:
                self._buckets[category] = TokenBucket(self._rate, self._burst, clock=self._clock, sleep=self._sleep)
            return self._buckets[category]

    def _count(self, api: str, operation: str, outcome: str) -> None:
        self.metrics.aws_calls.labels(api, operation, outcome).inc()
        key = (api, operation, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def call(
        self,
        api: str,
        operation: str,
        params: Mapping[str, Any],
        *,
        guard: Callable[[], None] | None = None,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """Call `api`'s `operation` with `params`; refused if dry-run forbids it.

        Reads and `idempotent` writes are retried on throttling, 5xx and connection trouble. Other
        writes are retried only when the error proves nothing happened (throttling, no connection);
        when the request may have been carried out, `AmbiguousWriteError` says so, and the caller
        checks before sending it again. `guard` runs before every attempt of a write (e.g. "this
        replica still holds the lease") and stops it by raising.
        """
        if self._refused(api, operation, params):
            self._count(api, operation, "blocked")
            raise DryRunViolationError(f"dry-run: refused {api}:{operation}")
        method = getattr(self.client(api), _snake(operation))
        bucket = self._bucket(api, operation)
        write = not is_read_only(operation)

        def attempt() -> dict[str, Any]:
            if self._budget is not None:
                self._budget.acquire(api, operation)
            if self._budget is None or api != "ecs":  # ECS's own buckets are the budget's to keep
                bucket.acquire()
            if write and guard is not None:
                guard()
            try:
                response: dict[str, Any] = method(**params)
            except Exception as error:
                self._count(api, operation, "throttled" if is_throttling(error) else "error")
                raise
            self._count(api, operation, "ok")
            return response

        retryable = is_retryable if (idempotent or not write) else is_not_carried_out
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=10.0),
            retry=retry_if_exception(retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Exception as error:
            if write and not idempotent and is_ambiguous(error):
                raise AmbiguousWriteError(f"{api}:{operation}: {type(error).__name__}: {error}") from error
            raise

    def paginate(
        self, api: str, operation: str, params: Mapping[str, Any], key: str, page_field: str = "nextToken"
    ) -> Iterator[Any]:
        """Every item under `key` across pages (each page is one budgeted, counted call)."""
        request = dict(params)
        while True:
            page = self.call(api, operation, request)
            yield from page.get(key) or []
            next_token = page.get(page_field)
            if not next_token:
                return
            request[page_field] = next_token

    def total_calls(self) -> int:
        return sum(count for (_, _, outcome), count in self.counts.items() if outcome != "blocked")


def _snake(operation: str) -> str:
    """`DescribeServices` -> `describe_services` (botocore's method names)."""
    return str(xform_name(operation))
