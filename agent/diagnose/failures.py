"""DIAGNOSE `failures[]` of RunTask / StartTask: why ECS would not launch a task at all.

`MISSING` entries in describe-* output are not failures of anything: the item asked about is gone
(stopped tasks expire about an hour after they stop), so they get no finding.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from agent.arns import region_of, resource_name
from agent.diagnose.fields import text
from agent.diagnose.messages import Reading, read_message
from agent.model import Cause, Finding, SourceKind, Subject

if TYPE_CHECKING:
    from collections.abc import Mapping

_REASON_CODES: dict[str, Reading] = {
    "RESOURCE:CPU": Reading(Cause.PLACEMENT_CPU, "no container instance has enough free CPU"),
    "RESOURCE:MEMORY": Reading(Cause.PLACEMENT_MEMORY, "no container instance has enough free memory"),
    "RESOURCE:PORTS": Reading(Cause.PLACEMENT_PORTS, "the host port the task needs is taken everywhere"),
    "RESOURCE:PORTS_UDP": Reading(Cause.PLACEMENT_PORTS, "the UDP host port the task needs is taken everywhere"),
    "RESOURCE:ENI": Reading(Cause.NETWORK_ENI, "no container instance has a free ENI"),
    "RESOURCE:GPU": Reading(Cause.CAPACITY_QUOTA, "no container instance has a free GPU"),
    "RESOURCE:FARGATE": Reading(Cause.CAPACITY_QUOTA, "Fargate capacity or quota ran out"),
    "ATTRIBUTE": Reading(Cause.PLACEMENT_ATTRIBUTES, "no container instance has the attributes the task requires"),
    "DISTINCT_INSTANCE": Reading(Cause.PLACEMENT_ATTRIBUTES, "the distinctInstance constraint cannot be met"),
    "LOCATION": Reading(Cause.PLACEMENT_ATTRIBUTES, "no container instance is in the required location"),
    "AGENT": Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the container instance's agent is disconnected"),
    "INACTIVE": Reading(Cause.INSTANCE_DRAIN_OR_HOST_FAILURE, "the container instance is inactive or draining"),
}


def diagnose_failure(failure: Mapping[str, Any], *, cluster: str | None = None) -> Finding | None:
    """A finding for one RunTask/StartTask failure; None for `MISSING` (the item no longer exists)."""
    reason = text(failure.get("reason"))
    detail = text(failure.get("detail"))
    if (not reason and not detail) or reason == "MISSING":
        return None
    arn = text(failure.get("arn")) or None
    reading = _REASON_CODES.get(reason.strip().upper()) or read_message(f"{reason} {detail}")
    if reading is None or not reading.cause.is_failure:
        reading = Reading(Cause.UNKNOWN, "ECS refused to launch the task")
    cluster_name = cluster or "<cluster>"
    subject = Subject(cluster=cluster_name, region=region_of(arn), message=f"{reason} {detail}".strip())
    evidence = [f"failure reason {reason!r}"] + ([f"detail {detail!r}"] if detail else [])
    if arn:
        evidence.append(f"arn {arn}")
    source = arn or f"failure:{zlib.crc32((reason + detail).encode()):08x}"
    return Finding(
        cause=reading.cause,
        source=source,
        source_kind=SourceKind.RUN_TASK_FAILURE,
        subject=subject,
        evidence=tuple(evidence),
        summary=f"task launch on {resource_name(arn) if arn else cluster_name} refused: {reading.because}",
    )
