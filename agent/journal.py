"""The agent's own record of the changes it made: the hourly cap and a cooldown backstop count from it.

Tags can be written by anyone allowed to tag a service, so the cap never counts them: twenty forged
records must not use up the fleet's changes, and a deleted record must not reopen a cooldown. The
journal lives in the process; after a restart it starts from the action records of the services the
agent manages (read once, validated like every state record), so a restart does not reset the cap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from agent.state import ActionRecord

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from agent.state import ServiceState

WINDOW = timedelta(hours=1)
_MAX_ENTRIES = 10_000  # far above any cap: a bound, not a limit


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    service_arn: str
    action: str
    proposal_id: str


@dataclass
class Journal:
    entries: deque[Entry] = field(default_factory=lambda: deque(maxlen=_MAX_ENTRIES))
    seeded: bool = False

    def record(self, at: datetime, service_arn: str, action: str, proposal_id: str) -> None:
        self.entries.append(Entry(at, service_arn, action, proposal_id))

    def seed(self, states: Iterable[tuple[str, ServiceState]], now: datetime) -> None:
        """Once, at the first pass: the changes of the last hour recorded on managed services."""
        if self.seeded:
            return
        self.seeded = True
        found = sorted(
            (
                Entry(record.last_at, arn, action, record.proposal_id)
                for arn, state in states
                for action, record in state.actions.items()
                if action != "notify" and record.outcome != "failed" and now - record.last_at < WINDOW
            ),
            key=lambda entry: entry.at,
        )
        known = {(e.service_arn, e.action, e.at) for e in self.entries}
        self.entries.extendleft(reversed([e for e in found if (e.service_arn, e.action, e.at) not in known]))

    def count_since(self, since: datetime) -> int:
        return sum(1 for entry in self.entries if entry.at >= since and entry.action != "notify")

    def in_last_hour(self, now: datetime) -> int:
        return self.count_since(now - WINDOW)

    def backstop(self, service_arn: str, state: ServiceState) -> ServiceState:
        """The state with every change this journal knows of at least as recent as recorded, so a record
        deleted from the tags does not reopen its cooldown."""
        for entry in self.entries:
            if entry.service_arn != service_arn:
                continue
            record = state.actions.get(entry.action)
            if record is None or record.last_at < entry.at:
                attempts = record.attempts if record else 1
                outcome = record.outcome if record else "applied"
                state = state.with_action(entry.action, ActionRecord(entry.at, attempts, outcome, entry.proposal_id))
        return state
