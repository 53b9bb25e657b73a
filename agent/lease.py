"""Leader election between replicas: a fenced lease item in a DynamoDB table.

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
"""

from __future__ import annotations

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
DEFAULT_MARGIN_SECONDS = 40.0  # one request's connect (5 s) and read (30 s) timeouts, and 5 s of skew


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
                self.log.info("leadership_changed", holder=self.holder, leader=held, fence=self.version)
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
        return self._update(
            "SET #h = :me, #e = :expires ADD #v :one",
            "attribute_not_exists(#n) OR #e < :now",
            {":expires": {"N": expires}, ":me": {"S": self.holder}, ":now": {"N": str(now)}, ":one": {"N": "1"}},
            {"#e": "expires", "#h": "holder", "#v": "version", "#n": "name"},
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
