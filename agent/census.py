"""The latest word on each service a replica reconciled: what a batch's storm guard counts for the rest
of its cluster, and what the fleet's gauges show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from agent.decide import Assessment


@dataclass
class Census:
    """The latest word on each service this replica reconciled, by cluster: failing or not, waiting for
    approval since when, and what could not be read. A batch's storm guard counts the rest of the
    cluster from it; the gauges show it."""

    failing: dict[str, dict[str, bool]] = field(default_factory=dict)  # cluster -> service ARN -> failing
    waiting: dict[str, datetime] = field(default_factory=dict)  # service ARN -> waiting for approval since
    unread: dict[str, set[str]] = field(default_factory=dict)  # cluster -> services whose read failed
    unlisted: dict[str, int] = field(default_factory=dict)  # cluster -> services a failed listing hid
    # One real assessment per cluster and state (failing or not), standing in for the services a batch
    # did not read: the storm guard reads only their cluster and whether they fail.
    exemplars: dict[tuple[str, bool], Assessment] = field(default_factory=dict)

    def clusters(self) -> set[str]:
        return set(self.failing) | {c for c, names in self.unread.items() if names} | set(self.unlisted)

    def note(self, assessment: Assessment) -> None:
        view = assessment.view
        failing = assessment.failing
        self.failing.setdefault(view.cluster, {})[view.arn] = failing
        self.exemplars[(view.cluster, failing)] = assessment
        self.unread.get(view.cluster, set()).discard(view.name)

    def note_waiting(self, arn: str, since: datetime | None) -> None:
        if since is None:
            self.waiting.pop(arn, None)
        else:
            self.waiting[arn] = since

    def forget(self, cluster: str, arn: str, name: str) -> None:
        self.failing.get(cluster, {}).pop(arn, None)
        self.unread.get(cluster, set()).discard(name)
        self.waiting.pop(arn, None)

    def keep_only(self, cluster: str, arns: set[str]) -> None:
        """A listing of `cluster` says these are its services: forget the others."""
        known = self.failing.get(cluster, {})
        for arn in [a for a in known if a not in arns]:
            del known[arn]
            self.waiting.pop(arn, None)

    def drop_cluster(self, cluster: str) -> None:
        for arn in self.failing.pop(cluster, {}):
            self.waiting.pop(arn, None)
        self.unread.pop(cluster, None)
        self.unlisted.pop(cluster, None)
        self.exemplars.pop((cluster, True), None)
        self.exemplars.pop((cluster, False), None)

    def unread_in(self, cluster: str) -> int:
        return len(self.unread.get(cluster, ())) + self.unlisted.get(cluster, 0)

    def others(self, cluster: str, read: set[str]) -> list[Assessment]:
        """Stand-ins for the services of `cluster` this batch did not read."""
        stand_ins = []
        for arn, failing in self.failing.get(cluster, {}).items():
            exemplar = self.exemplars.get((cluster, failing))
            if arn not in read and exemplar is not None:
                stand_ins.append(exemplar)
        return stand_ins
