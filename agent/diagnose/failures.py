"""DIAGNOSE `failures[]` of RunTask / StartTask: why ECS would not launch a task at all.

`MISSING` entries in describe-* output are not failures of anything: the item asked about is gone
(stopped tasks expire about an hour after they stop), so they get no finding.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from agent.arns import region_of, resource_name
from agent.diagnose.fields import text
from agent.diagnose.messages import REASON_CODES, Reading, guess, nearest_evidence, read_message
from agent.model import Cause, Finding, SourceKind, Subject

if TYPE_CHECKING:
    from collections.abc import Mapping


def diagnose_failure(failure: Mapping[str, Any], *, cluster: str | None = None) -> Finding | None:
    """A finding for one RunTask/StartTask failure; None for `MISSING` (the item no longer exists)."""
    reason = text(failure.get("reason"))
    detail = text(failure.get("detail"))
    if (not reason and not detail) or reason == "MISSING":
        return None
    arn = text(failure.get("arn")) or None
    message = f"{reason} {detail}".strip()
    reading = REASON_CODES.get(reason.strip().upper()) or read_message(message)
    if reading is None or not reading.cause.is_failure:
        reading = Reading(Cause.UNKNOWN, "ECS refused to launch the task", nearest=guess(message))
    cluster_name = cluster or "<cluster>"
    subject = Subject(cluster=cluster_name, region=region_of(arn), message=message)
    evidence = [f"failure reason {reason!r}"] + ([f"detail {detail!r}"] if detail else [])
    if arn:
        evidence.append(f"arn {arn}")
    evidence += nearest_evidence(reading.nearest)
    source = arn or f"failure:{zlib.crc32((reason + detail).encode()):08x}"
    return Finding(
        cause=reading.cause,
        source=source,
        source_kind=SourceKind.RUN_TASK_FAILURE,
        subject=subject,
        evidence=tuple(evidence),
        summary=f"task launch on {resource_name(arn) if arn else cluster_name} refused: {reading.because}",
        nearest=reading.nearest,
    )
