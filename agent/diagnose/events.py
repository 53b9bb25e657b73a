"""DIAGNOSE service events: a finding for each event that reports a problem, none for the rest.

Service events are the scheduler's diary. Most lines are routine (steady state, tasks started and
stopped, targets registered); the ones that matter say the scheduler could not place, launch or keep
a task. Since 2023 they also embed task errors (`was unable to place a task. Reason:
CannotPullContainerError: ...`): that is a pull failure, not a placement failure, so embedded reasons
are read as messages of their own.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Any

from agent.arns import as_datetime
from agent.diagnose.fields import text
from agent.diagnose.messages import (
    TASK_START_CAUSES,
    Reading,
    guess,
    nearest,
    nearest_evidence,
    normalize,
    read_message,
)
from agent.model import Cause, Finding, SourceKind, Subject

if TYPE_CHECKING:
    from collections.abc import Mapping

# The subject in parentheses at the start (`(service web)`, `(service web, taskSet ecs-svc/1)`) is a
# name the operator chose: it must never be read as part of the message.
_SUBJECT_PREFIX = re.compile(r"^\s*\(service [^)]*\)\s*|^\s*service \S+\s+", re.IGNORECASE)

_INFORMATIONAL = re.compile(
    "|".join(
        (
            r"has reached a steady state",
            r"has started \d+ tasks?",
            r"has stopped \d+ running tasks?",
            r"(?:de)?registered \d+ targets?",
            r"has begun draining connections",
            r"deployment (?:\(?ecs-svc/\S+\)? )?(?:has )?completed",
            r"deployment completed",
            r"updated computeddesiredcount",
            r"has begun draining",
            r"has been (?:re)?started",
            r"desired count",
            r"task set \S+ (?:has been|is) (?:created|scaled)",
        )
    )
)
_PROBLEM_WORDS = re.compile(
    r"unable|failed|failure|error|unhealthy|not healthy|insufficient|denied|not authorized|throttl|invalid|cannot"
    r"|can't|could not|rolling back|exceeded|limit|quota|timed out|not found|misconfigured|no longer"
)
_EMBEDDED_REASON = re.compile(r"\breason:\s+(?P<reason>.+)$|\(error (?P<error>.+)\)\.?$", re.IGNORECASE)
_CIRCUIT_BREAKER = re.compile(r"deployment failed|rolling back to|circuit breaker|rolled back")
_UNABLE_TO_START = re.compile(r"unable to consistently start tasks|unable to start tasks")
_PLACEMENT = re.compile(r"unable to place a task|no container instance met all of its requirements")
_NO_INSTANCE_MET = re.compile(r"no container instance met all of its requirements")
_CLOSEST_MATCH = re.compile(r"closest matching.*$")
_TARGET_GROUP = re.compile(r"arn:aws[\w-]*:elasticloadbalancing:[^\s)]+:targetgroup/[^\s)]+")


def strip_subject(message: str) -> str:
    """The event text without its leading `(service NAME)` subject."""
    return _SUBJECT_PREFIX.sub("", message, count=1)


def _read_event(text: str, task_cause: Cause | None) -> Reading | None:
    """What one service event reports, or None when it is routine."""
    t = normalize(text)
    if not _PROBLEM_WORDS.search(t) and _INFORMATIONAL.search(t):
        return None
    if _CIRCUIT_BREAKER.search(t):
        return Reading(Cause.DEPLOYMENT_CIRCUIT_BREAKER, "the deployment failed and was stopped or rolled back")
    if _UNABLE_TO_START.search(t):
        if task_cause is not None:
            because = "ECS is backing off task launches; the stopped tasks show why"
            return Reading(task_cause, because, "unable-to-start")
        return Reading(
            Cause.UNKNOWN,
            "ECS is backing off task launches because tasks keep failing to start; their stop reasons say why",
            "unable-to-start",
            nearest((*TASK_START_CAUSES, Cause.APP_CRASH, Cause.HEALTH_CHECK_ELB)),
        )
    embedded = _EMBEDDED_REASON.search(text)
    if embedded:
        reason = embedded.group("reason") or embedded.group("error") or ""
        inner = read_message(reason)
        if inner is not None and inner.cause.is_failure:
            return inner
        if not _NO_INSTANCE_MET.search(t):
            return Reading(
                Cause.UNKNOWN,
                "the scheduler could not launch a task, for a reason not in the catalogue",
                "unable-to-place",
                guess(reason),
            )
    if _PLACEMENT.search(t):
        closest = _CLOSEST_MATCH.search(t)
        inner = read_message(closest.group(0)) if closest else None
        if inner is not None and inner.cause.is_failure:
            return inner
        return Reading(Cause.PLACEMENT_ATTRIBUTES, "no container instance met all of the task's requirements")
    reading = read_message(text)
    if reading is not None and reading.cause.is_failure:
        return reading
    if _PROBLEM_WORDS.search(t):
        return Reading(Cause.UNKNOWN, "the scheduler reports a problem that is not in the catalogue", nearest=guess(t))
    return None


_STEADY_STATE = re.compile(r"has reached a steady state\.?$")


def is_steady_state_event(event: Mapping[str, Any]) -> bool:
    """`(service x) has reached a steady state.`: everything older was resolved."""
    message = event.get("message")
    return isinstance(message, str) and bool(_STEADY_STATE.search(message.strip()))


def reports_problem(message: str) -> bool:
    """Whether a service event reports a problem (a cheap check, for deciding what to read next)."""
    return _read_event(strip_subject(message), None) is not None


def diagnose_event(event: Mapping[str, Any], service: Subject, *, task_cause: Cause | None = None) -> Finding | None:
    """A finding for a service event that reports a problem; None for routine events.

    `service` is what is known of the service (cluster, name, current and last good revisions).
    `task_cause` is the most common cause among the service's stopped tasks: events such as
    `unable to consistently start tasks` only say *that* tasks fail, the tasks say why.
    """
    message = event.get("message")
    if not isinstance(message, str) or not message.strip():
        return None
    body = strip_subject(message)
    reading = _read_event(body, task_cause)
    if reading is None:
        return None
    event_id = text(event.get("id"))
    target_group = _TARGET_GROUP.search(message)
    return Finding(
        cause=reading.cause,
        source=event_id or f"event:{zlib.crc32(message.encode()):08x}",
        source_kind=SourceKind.SERVICE_EVENT,
        subject=service._replace(target_group=target_group.group(0) if target_group else None, message=body),
        evidence=(f"event {message!r}", *nearest_evidence(reading.nearest)),
        summary=f"{service.service}: {reading.because}",
        occurred_at=as_datetime(event.get("createdAt")),
        nearest=reading.nearest,
    )
