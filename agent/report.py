"""REPORT findings for people: grouped by service, failures first, one cause per block.

A service with forty stopped tasks usually has one or two causes, so findings are folded by cause:
the block shows how many, the newest example's evidence and the fix once, and lists the rest by id.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.diagnose.advice import advice_for
from agent.model import Finding, SourceKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from agent.decide import Proposal

_WIDTH = 100
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Block:
    cluster: str
    service: str | None
    findings: tuple[Finding, ...]

    @property
    def example(self) -> Finding:
        """The finding that tells the most: a task (it carries the error itself), the newest one."""
        return max(self.findings, key=lambda f: (f.source_kind is SourceKind.TASK, f.occurred_at or _OLDEST))


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """A finding as the JSON output shows it (the product's contract)."""
    return {
        "cause": finding.cause.value,
        "failure": finding.failure,
        "source": finding.source,
        "sourceKind": finding.source_kind.value,
        "cluster": finding.cluster,
        "service": finding.service,
        "occurredAt": finding.occurred_at.isoformat() if finding.occurred_at else None,
        "evidence": list(finding.evidence),
        "summary": finding.summary,
        "advice": advice_for(finding).to_dict(),
        # `unknown` findings say which causes they were nearest to, and what wording would prove each.
        **(
            {"nearestCauses": [{"cause": cause.value, "tellApart": sign} for cause, sign in finding.nearest]}
            if finding.nearest
            else {}
        ),
    }


def _blocks(findings: Iterable[Finding]) -> dict[tuple[str, str | None], list[_Block]]:
    grouped: dict[tuple[str, str | None], dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for finding in findings:
        grouped[(finding.cluster, finding.service)][finding.cause.value].append(finding)
    result: dict[tuple[str, str | None], list[_Block]] = {}
    for (cluster, service), by_cause in grouped.items():
        blocks = [_Block(cluster, service, tuple(items)) for items in by_cause.values()]
        blocks.sort(key=lambda b: (not b.findings[0].failure, -len(b.findings), b.findings[0].cause.value))
        result[(cluster, service)] = blocks
    return result


def _wrap(label: str, text: str, indent: int = 6) -> list[str]:
    prefix = " " * indent + f"{label:<9}"
    return textwrap.wrap(
        text,
        _WIDTH,
        initial_indent=prefix,
        subsequent_indent=" " * len(prefix),
        break_on_hyphens=False,
        break_long_words=False,
    ) or [prefix]


def _short(source: str) -> str:
    return source.rsplit("/", 1)[-1] if source.startswith("arn:") else source


def _render_block(block: _Block) -> list[str]:
    example = block.example
    count = len(block.findings)
    marker = "FAIL" if example.failure else "ok  "
    times = f" x{count}" if count > 1 else ""
    lines = [f"  {marker} {example.cause.value}{times}: {example.summary}"]
    for index, line in enumerate(example.evidence):
        lines += _wrap("evidence" if index == 0 else "", line)
    others = [f for f in block.findings if f is not example]
    for finding in (f for f in others if f.source_kind is not SourceKind.TASK):
        lines += _wrap("also", finding.summary)
    tasks = [_short(f.source) for f in others if f.source_kind is SourceKind.TASK]
    if tasks:
        shown = ", ".join(tasks[:6]) + (f" and {len(tasks) - 6} more" if len(tasks) > 6 else "")
        lines += _wrap("tasks", f"also {shown}")
    if example.failure:
        advice = advice_for(example)
        lines += _wrap("fix", advice.fix)
        # Commands stay on one line each, so they can be copied and run as printed.
        lines += [f"{' ' * 15}$ {command}" for command in advice.commands]
    return lines


def render_text(findings: Sequence[Finding]) -> str:
    """The report a person reads at 3 a.m.: what is broken, why, and the command that fixes it."""
    failures = sum(1 for f in findings if f.failure)
    services = {(f.cluster, f.service) for f in findings if f.service}
    header = (
        f"{len(findings)} findings, {failures} failures, across {len(services)} services"
        if findings
        else "No findings: nothing in the input reports a problem."
    )
    lines = [header]
    blocks = _blocks(findings)
    order = sorted(
        blocks,
        key=lambda key: (
            -sum(len(b.findings) for b in blocks[key] if b.findings[0].failure),
            key[0],
            key[1] or "",
        ),
    )
    for cluster, service in order:
        service_blocks = blocks[(cluster, service)]
        failing = sum(len(b.findings) for b in service_blocks if b.findings[0].failure)
        title = f"{cluster} / {service}" if service else f"{cluster} (tasks not started by a service)"
        state = f"{failing} failures" if failing else "no failures"
        lines += ["", f"{title}: {state}"]
        for block in service_blocks:
            lines += _render_block(block)
    return "\n".join(lines) + "\n"


def render_proposals(proposals: Sequence[Proposal]) -> str:
    """Proposals for people: what would change (or changed), why, and the command that does it."""
    if not proposals:
        return "No proposals: no policy applies to what was found.\n"
    order = {"failed": 0, "applied": 1, "awaiting_approval": 2, "proposed": 3}
    lines = [f"{len(proposals)} proposals ({proposals[0].mode.value})"]
    for proposal in sorted(proposals, key=lambda p: (order.get(p.outcome.value, 4), p.cluster, p.service)):
        title = f"{proposal.outcome.value.upper()} {proposal.cluster} / {proposal.service}: {proposal.action}"
        lines += ["", f"  {title} (policy {proposal.policy}, cause {proposal.cause})"]
        lines += _wrap("what", proposal.plan.summary)
        for change in proposal.plan.changes:
            lines += _wrap("change", f"{change.field}: {change.current} -> {change.desired}")
        if proposal.reason:
            lines += _wrap("status", proposal.reason)
        lines += _wrap("id", proposal.id)
        for index, line in enumerate(proposal.evidence[:4]):
            lines += _wrap("evidence" if index == 0 else "", line)
        lines += [f"{' ' * 15}$ {command}" for command in proposal.plan.commands]
    return "\n".join(lines) + "\n"
