"""The world's record of every API request clients sent it, so a test can prove what a client did.

The world's own setup calls (builders, `deploy`) are not recorded: the record is about clients.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

_READ_PREFIXES = (
    "Describe",
    "List",
    "Get",
    "BatchGet",
    "Query",
    "Scan",
    "Search",
    "Lookup",
    "Filter",
    "Simulate",
    "Test",
    "Select",
)
_READ_OPERATIONS = frozenset({"ReceiveMessage", "BatchCheckLayerAvailability"})


def is_mutating(operation: str) -> bool:
    """Whether an operation can change anything (every one that is not a read by its name)."""
    return not (operation.startswith(_READ_PREFIXES) or operation in _READ_OPERATIONS)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request: the AWS service's signing name (`ecs`, `autoscaling`, ...) and operation, when it
    arrived in simulated time, and how it was answered (HTTP status; the fault injected, if any)."""

    sequence: int
    service: str
    operation: str
    at: datetime
    status: int
    fault: str | None = None
    account: str | None = None  # the account the request was made in

    @property
    def mutating(self) -> bool:
        return is_mutating(self.operation)

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


class RequestLog:
    """Thread-safe, append-only list of `RecordedRequest`, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(
        self, service: str, operation: str, at: datetime, status: int, fault: str | None, *, account: str | None = None
    ) -> None:
        with self._lock:
            self._items.append(RecordedRequest(len(self._items), service, operation, at, status, fault, account))

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def mutating(self) -> list[RecordedRequest]:
        """Requests that could have changed something: everything not Describe*/List*/Get*/... ."""
        return [r for r in self.all() if r.mutating]

    def names(self) -> list[str]:
        return [r.name for r in self.all()]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
