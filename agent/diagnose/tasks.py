"""DIAGNOSE a stopped task: exactly one root cause, weighing every signal the task carries.

The stop code and stop reason say who stopped the task and in which phase; the containers' reasons
and exit codes say why. `Essential container in task exited` comes with nearly every failure, and
exit codes mislead on their own (an OOM kill can report 0, a Spot interruption 2, and a SIGKILL
after a stop request is 137 without any OOM), so the decision goes, in order:
who asked for the stop -> what the stop reason names -> the most telling container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from agent.arns import (
    as_datetime,
    cluster_of_task,
    family_revision,
    image_in_text,
    region_of,
    resource_name,
    service_of_group,
    task_id,
)
from agent.diagnose.fields import integer, text
from agent.diagnose.messages import (
    TASK_START_CAUSES,
    Nearest,
    Reading,
    exit_code_in,
    guess,
    nearest,
    nearest_evidence,
    read_message,
)
from agent.model import Cause, Finding, SourceKind, Subject

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_STOPPED_STATES = frozenset({"STOPPED", "STOPPING", "DEPROVISIONING", "DEACTIVATING"})
# Exit codes a container gets when *something else* stopped it (SIGKILL, SIGTERM): never the
# first thing to blame when another container has a signal of its own.
_KILLED_BY_SIGNAL = frozenset({137, 143})
_CANNOT_EXECUTE = frozenset({126, 127, 255})
_ESSENTIAL_EXITED = re.compile(r"essential container in task exited", re.IGNORECASE)
_PULL_CAUSES = frozenset({Cause.IMAGE_NOT_FOUND, Cause.IMAGE_PULL_AUTH, Cause.IMAGE_PULL_NETWORK})
_SIGNAL_NAMES = {134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV", 143: "SIGTERM"}
# How telling a container is, most first: its reason names a failure; it exited on its own; its reason
# only blames another container (a dependency); it was killed by a signal; it exited cleanly; nothing.
_NAMES_FAILURE, _EXITED, _SECONDARY, _KILLED, _CLEAN, _NOTHING = range(6)
_LIKELY_SIDECAR = re.compile(
    r"datadog|envoy|x-?ray|otel|opentelemetry|log[-_]?router|firelens|fluent|cloudwatch[-_]?agent|cwagent"
    r"|appmesh|istio|newrelic|splunk|sumo|filebeat|telemetry|sidecar|metrics[-_]?agent",
    re.IGNORECASE,
)


def _names_failure(reading: Reading | None) -> bool:
    """The reading names a failure cause (an `unknown` reading names none: it only says there was one)."""
    return reading is not None and reading.cause.is_failure and reading.cause is not Cause.UNKNOWN


def _secondary(reading: Reading | None) -> bool:
    """The reading only blames another container of the task (a dependency that failed)."""
    return reading is not None and reading.template.startswith("dependency/")


def is_stopped(task: Mapping[str, Any]) -> bool:
    return (
        text(task.get("lastStatus")) in _STOPPED_STATES
        or task.get("desiredStatus") == "STOPPED"
        or bool(text(task.get("stopCode")))
    )


class _ContainerSignal(NamedTuple):  # a tuple: built for every container of every task, so cheap to make
    name: str
    exit_code: int | None
    reason: str
    reading: Reading | None
    image: str | None
    rank: int  # _NAMES_FAILURE (most telling) .. _NOTHING (least)
    demoted: bool  # a sidecar: its signal yields to any essential container's
    line: str  # the evidence line

    @property
    def sort_key(self) -> tuple[bool, int]:
        return (self.demoted, self.rank)

    @property
    def label(self) -> str:
        return f"container {self.name}" if self.name else "the essential container"


def _evidence_line(name: str, exit_code: int | None, reason: str) -> str:
    parts = []
    if exit_code is not None:
        parts.append(f"exitCode {exit_code}")
    if reason:
        parts.append(f"reason {reason!r}")
    return f"container {name}: " + (", ".join(parts) if parts else "no exit code or reason")


def _signal(container: Mapping[str, Any], index: int, essential: Mapping[str, bool] | None) -> _ContainerSignal:
    name = text(container.get("name")) or f"#{index}"
    reason = text(container.get("reason"))
    exit_code = integer(container.get("exitCode"))
    reading = read_message(reason) if reason else None
    if _names_failure(reading) and not _secondary(reading):
        rank = _NAMES_FAILURE
    elif exit_code is None:
        rank = _SECONDARY if _names_failure(reading) else _NOTHING
    elif exit_code == 0:
        rank = _CLEAN
    elif exit_code in _KILLED_BY_SIGNAL:
        rank = _KILLED
    else:
        rank = _EXITED
    known = essential.get(name) if essential else None
    demoted = (known is False) or (known is None and bool(_LIKELY_SIDECAR.search(name)))
    return _ContainerSignal(
        name=name,
        exit_code=exit_code,
        reason=reason,
        reading=reading,
        image=text(container.get("image")) or None,
        rank=rank,
        demoted=demoted,
        line=_evidence_line(name, exit_code, reason),
    )


@dataclass(frozen=True, slots=True)
class _Verdict:
    cause: Cause
    because: str
    decided_by: str  # the one evidence line that decided it
    container: _ContainerSignal | None = None
    nearest: Nearest = ()  # for UNKNOWN: the causes it could be, with what would prove each


_SIGKILL_WITHOUT_EVIDENCE = nearest(
    (
        Cause.OOM,
        Cause.HEALTH_CHECK_CONTAINER,
        Cause.HEALTH_CHECK_ELB,
        Cause.USER_STOP,
        Cause.SCALE_IN_OR_DEPLOY,
    )
)
# What a task that gives no recognised signal could have stopped for, by its stop code.
_BY_STOP_CODE_NEAREST = {
    "TaskFailedToStart": TASK_START_CAUSES,
    "EssentialContainerExited": (Cause.APP_CRASH, Cause.OOM, Cause.ENTRYPOINT_ERROR),
    "ServiceSchedulerInitiated": (Cause.HEALTH_CHECK_ELB, Cause.HEALTH_CHECK_CONTAINER, Cause.SCALE_IN_OR_DEPLOY),
}


def _from_exit_code(signal: _ContainerSignal, stop_requested: bool) -> _Verdict | None:
    code = signal.exit_code
    line = signal.line
    if code is None:
        return None
    if code in _CANNOT_EXECUTE:
        return _Verdict(
            Cause.ENTRYPOINT_ERROR,
            f"{signal.label} could not run its command (exit {code})",
            line,
            signal,
        )
    if code == 137:
        if stop_requested:
            return None
        return _Verdict(
            Cause.UNKNOWN,
            f"{signal.label} was killed by SIGKILL (exit 137) with no OOM evidence and no stop request",
            line,
            signal,
            _SIGKILL_WITHOUT_EVIDENCE,
        )
    if code == 0:
        return _Verdict(Cause.APP_CRASH, f"{signal.label} ended its process (exit 0)", line, signal)
    signal_name = _SIGNAL_NAMES.get(code)
    detail = f"exit {code}, {signal_name}" if signal_name else f"exit {code}"
    return _Verdict(Cause.APP_CRASH, f"{signal.label} crashed ({detail})", line, signal)


def _by_stop_code(stop_code: str, stopped_reason: str, reason_line: str) -> _Verdict | None:
    """Stop codes that settle the question whatever the containers say."""
    if stop_code == "SpotInterruption":
        return _Verdict(Cause.SPOT_INTERRUPTION, "Spot capacity was reclaimed", "stopCode SpotInterruption")
    if stop_code == "TerminationNotice":
        # Fargate Spot reclaims also arrive as TerminationNotice; the reason says which.
        reading = read_message(stopped_reason)
        if reading is not None and reading.cause is Cause.SPOT_INTERRUPTION:
            return _Verdict(Cause.SPOT_INTERRUPTION, reading.because, reason_line)
        return _Verdict(
            Cause.INSTANCE_DRAIN_OR_HOST_FAILURE,
            "its host received a termination notice",
            "stopCode TerminationNotice",
        )
    if stop_code == "UserInitiated":
        return _Verdict(Cause.USER_STOP, "someone stopped the task", "stopCode UserInitiated")
    return None


def _from_reading(signal: _ContainerSignal) -> _Verdict | None:
    reading = signal.reading
    if reading is None or not _names_failure(reading):
        return None
    return _Verdict(reading.cause, f"container {signal.name}: {reading.because}", signal.line, signal)


def _decide(stop_code: str, stopped_reason: str, reason_line: str, signals: Sequence[_ContainerSignal]) -> _Verdict:
    by_stop_code = _by_stop_code(stop_code, stopped_reason, reason_line)
    if by_stop_code is not None:
        return by_stop_code
    ordered = signals if len(signals) < 2 else sorted(signals, key=lambda s: s.sort_key)
    best = ordered[0] if ordered else None
    reason_reading = read_message(stopped_reason) if stopped_reason else None
    if reason_reading is not None and reason_reading.cause is not Cause.UNKNOWN:
        # A container's own failure beats a generic scheduler reason only when the reason is benign
        # and the container names a real failure (an OOM kill during a deploy is still an OOM kill).
        if not reason_reading.cause.is_failure and best is not None and best.rank == _NAMES_FAILURE:
            verdict = _from_reading(best)
            if verdict is not None:
                return verdict
        return _Verdict(
            reason_reading.cause,
            reason_reading.because,
            reason_line,
            best if best is not None and best.rank <= _EXITED else None,
        )

    # The stop reason names no cause (or only says the task failed): the containers decide.
    stop_requested = stop_code == "ServiceSchedulerInitiated"
    for signal in ordered:
        verdict = _from_reading(signal) or _from_exit_code(signal, stop_requested)
        if verdict is not None:
            return verdict

    code_in_reason = exit_code_in(stopped_reason)
    if code_in_reason is not None and all(s.exit_code is None for s in signals):
        # Some tools print the exit code into the reason (`... Exit code: 137`) and drop the containers.
        unnamed = _ContainerSignal("", code_in_reason, "", None, None, _EXITED, demoted=False, line=reason_line)
        verdict = _from_exit_code(unnamed, stop_requested)
        if verdict is not None:
            return _Verdict(verdict.cause, verdict.because, reason_line, nearest=verdict.nearest)
    raw = next((s for s in ordered if s.reason), None)
    if reason_reading is not None and (raw is None or reason_reading.template != "TaskFailedToStart"):
        # An unknown failure (never to be called a routine scale-in), unless a container says more.
        return _Verdict(Cause.UNKNOWN, reason_reading.because, reason_line, best, reason_reading.nearest)
    if stop_requested:
        return _Verdict(
            Cause.SCALE_IN_OR_DEPLOY, "the service scheduler stopped it", "stopCode ServiceSchedulerInitiated"
        )
    if _ESSENTIAL_EXITED.search(stopped_reason) and not any(s.exit_code is not None or s.reason for s in signals):
        return _Verdict(Cause.APP_CRASH, "the essential container exited (no exit code was reported)", reason_line)
    if raw is not None:
        candidates = raw.reading.nearest if raw.reading is not None and raw.reading.nearest else guess(raw.reason)
        because = raw.reading.because if raw.reading is not None else "an error not in the catalogue"
        return _Verdict(Cause.UNKNOWN, f"container {raw.name} reports {because}", raw.line, raw, candidates)
    candidates = nearest(_BY_STOP_CODE_NEAREST.get(stop_code, ())) or guess(stopped_reason)
    return _Verdict(
        Cause.UNKNOWN,
        "no recognised signal",
        reason_line if stopped_reason else f"stopCode {stop_code!r}",
        nearest=candidates,
    )


def diagnose_task(
    task: Mapping[str, Any],
    *,
    cluster: str | None = None,
    essential: Mapping[str, bool] | None = None,
    last_good: str | None = None,
) -> Finding | None:
    """The root cause of one stopped task, or None if the task has not stopped.

    `essential` maps container names to their task-definition `essential` flag when known; without it,
    well-known sidecar names (log routers, tracing and metrics agents) yield to the others.
    `last_good` is the service's last task definition that reached steady state, for the rollback advice.
    """
    if not is_stopped(task):
        return None
    task_arn = text(task.get("taskArn")) or "<unknown task>"
    stop_code = text(task.get("stopCode"))
    stopped_reason = text(task.get("stoppedReason"))
    containers = task.get("containers")
    signals = [
        _signal(container, index, essential)
        for index, container in enumerate(containers if isinstance(containers, list) else [])
        if isinstance(container, dict)
    ]
    reason_line = f"stoppedReason {stopped_reason!r}" if stopped_reason else ""
    verdict = _decide(stop_code, stopped_reason, reason_line, signals)

    lines = [s.line for s in signals if s.exit_code is not None or (s.reason and s.reason != stopped_reason)]
    evidence = list(
        dict.fromkeys(
            (
                verdict.decided_by,
                *((f"stopCode {stop_code}",) if stop_code else ()),
                *((reason_line,) if reason_line else ()),
                *lines,
                *nearest_evidence(verdict.nearest),
            )
        )
    )

    cluster_arn = text(task.get("clusterArn"))
    service = service_of_group(text(task.get("group")))
    task_definition = family_revision(text(task.get("taskDefinitionArn")))
    started_at = as_datetime(task.get("startedAt"))
    stopped_at = as_datetime(task.get("stoppedAt"))
    chosen = verdict.container
    message = (chosen.reason if chosen and chosen.reason else stopped_reason) or ""
    image = (chosen.image if chosen else None) or _first_image(signals) or image_in_text(message)
    subject = Subject(
        cluster=cluster or resource_name(cluster_arn) or cluster_of_task(task_arn) or "<cluster>",
        service=service,
        region=region_of(task_arn) or region_of(cluster_arn),
        task_arn=task_arn,
        task_definition=task_definition,
        container=chosen.name if chosen else None,
        image=image,
        exit_code=chosen.exit_code if chosen else None,
        run_seconds=(stopped_at - started_at).total_seconds() if started_at and stopped_at else None,
        started_by=text(task.get("startedBy")) or None,
        target_group=_target_group_in(stopped_reason),
        message=message,
        last_good_task_definition=last_good if last_good != task_definition else None,
    )
    because = verdict.because
    if image and verdict.cause in _PULL_CAUSES:
        because += f" ({image.rsplit('/', 1)[-1]})"
    where = f"{service} " if service else ""
    revision = f" ({task_definition})" if task_definition else ""
    return Finding(
        cause=verdict.cause,
        source=task_arn,
        source_kind=SourceKind.TASK,
        subject=subject,
        evidence=tuple(evidence),
        summary=f"{where}task {task_id(task_arn)}{revision} stopped: {because}",
        occurred_at=stopped_at,
        nearest=verdict.nearest,
    )


def _first_image(signals: Sequence[_ContainerSignal]) -> str | None:
    for signal in signals:
        if signal.image:
            return signal.image
    return None


_TARGET_GROUP = re.compile(r"arn:aws[\w-]*:elasticloadbalancing:[^\s)]+:targetgroup/[^\s)]+")


def _target_group_in(text: str) -> str | None:
    match = _TARGET_GROUP.search(text) if "targetgroup/" in text else None
    return match.group(0) if match else None
