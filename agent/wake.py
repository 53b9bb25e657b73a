"""Wake the loop early when EventBridge says something happened in ECS (an SQS queue of `aws.ecs` events).

An event only says "look now": the pass that follows re-reads everything, so a lost, late or
duplicated event costs nothing but latency. Long polls stay short (at most 5 s per call) so that,
between passes, SIGTERM is honoured within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_POLL_SECONDS = 5


@dataclass
class QueueWake:
    aws: Any  # agent.aws.AwsGateway
    queue_url: str
    delete: bool  # only when enforcing: deleting a message is a write
    log: Any
    clock: Callable[[], float] = time.monotonic

    def __call__(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to `timeout` seconds for an event; True when one arrived."""
        deadline = self.clock() + timeout
        while not stop.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False
            try:
                response = self.aws.call(
                    "sqs",
                    "ReceiveMessage",
                    {
                        "QueueUrl": self.queue_url,
                        "MaxNumberOfMessages": 10,
                        "WaitTimeSeconds": max(1, min(MAX_POLL_SECONDS, int(remaining))),
                    },
                )
            except Exception as error:  # noqa: BLE001 - the queue is an accelerator; polling still works
                self.log.warning("events_queue_failed", error=f"{type(error).__name__}: {error}")
                stop.wait(min(remaining, MAX_POLL_SECONDS))
                continue
            messages = response.get("Messages") or []
            if messages:
                if self.delete:
                    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                    self.aws.call("sqs", "DeleteMessageBatch", {"QueueUrl": self.queue_url, "Entries": entries})
                self.log.info("events_received", count=len(messages))
                return True
        return False
