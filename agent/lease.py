"""Leader election between replicas: a lease item in a DynamoDB table, renewed every pass.

Only the holder acts; the others observe and propose, so a second replica is a warm standby, never a
second pair of hands. The lease expires if its holder stops renewing (crash, partition), and any
replica may then take it. Conditional writes make it safe without clocks agreeing closely: a holder
loses the lease at most `ttl` after its last successful renewal.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

LEASE_NAME = "ecs-medic-leader"


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
    held: bool = False

    def renew(self) -> bool:
        """Take or keep the lease; True when this replica holds it now."""
        now = self.now().timestamp()
        try:
            self.aws.call(
                "dynamodb",
                "PutItem",
                {
                    "TableName": self.table,
                    "Item": {
                        "name": {"S": LEASE_NAME},
                        "holder": {"S": self.holder},
                        "expires": {"N": str(int(now + self.ttl_seconds))},
                    },
                    "ConditionExpression": "attribute_not_exists(#n) OR #e < :now OR #h = :me",
                    "ExpressionAttributeNames": {"#n": "name", "#e": "expires", "#h": "holder"},
                    "ExpressionAttributeValues": {":now": {"N": str(int(now))}, ":me": {"S": self.holder}},
                },
            )
        except Exception as error:  # noqa: BLE001 - not holding the lease is the safe answer to any failure
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            if code != "ConditionalCheckFailedException":
                self.log.warning("lease_failed", table=self.table, error=f"{type(error).__name__}: {error}")
            changed = self.held
            self.held = False
        else:
            changed = not self.held
            self.held = True
        if changed:
            self.log.info("leadership_changed", holder=self.holder, leader=self.held)
        return self.held

    def release(self) -> None:
        if not self.held:
            return
        try:
            self.aws.call(
                "dynamodb",
                "DeleteItem",
                {
                    "TableName": self.table,
                    "Key": {"name": {"S": LEASE_NAME}},
                    "ConditionExpression": "#h = :me",
                    "ExpressionAttributeNames": {"#h": "holder"},
                    "ExpressionAttributeValues": {":me": {"S": self.holder}},
                },
            )
        except Exception as error:  # noqa: BLE001 - the lease expires on its own
            self.log.warning("lease_release_failed", error=f"{type(error).__name__}: {error}")
        self.held = False
