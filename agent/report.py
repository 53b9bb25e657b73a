"""REPORT findings for people: grouped by service, failures first, one cause per block.

A service with forty stopped tasks usually has one or two causes, so findings are folded by cause:
the block shows how many, the newest example's evidence and the fix once, and lists the rest by id.

Everything printed that came from AWS or from an application (names, messages, log lines) goes
through `printable` first: terminal escape sequences and control characters are removed, so a log
line cannot clear the screen or forge a line of the report.
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.arns import resource_name
from agent.diagnose.advice import advice_for
from agent.model import Advice, Finding, ServiceView, SourceKind

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

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


# ESC sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-byte forms) and 8-bit CSI.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~])?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# C0 and C1 controls, DEL, zero-width and bidirectional overrides (text that displays other than it reads).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(text: object) -> str:
    """`text` as one safe line for a terminal: escape sequences removed, other controls shown as spaces."""
    return _CONTROL.sub(" ", _ESCAPE_SEQUENCE.sub("", str(text)))


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 finding`, `2 findings`."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def show_value(value: object) -> str:
    """A field's value as people read it: `unset`, `true`, `512`, compact JSON for structures."""
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return printable(value)


def facts_of(view: ServiceView, finding: Finding, region: str | None = None) -> dict[str, str]:
    """The `<placeholders>` of a finding's advice that live diagnosis read, with their real values.

    Only what is known for certain: the log group and stream prefix of the finding's own container,
    the service's subnets and security groups, its one target group, its one Auto Scaling group.
    """
    facts: dict[str, str] = {}
    definition = view.task_definitions.get(finding.subject.task_definition or view.task_definition) or {}
    containers = [c for c in definition.get("containerDefinitions") or [] if isinstance(c, dict)]
    container = next((c for c in containers if c.get("name") == finding.subject.container), None)
    if container is None and len(containers) == 1:
        container = containers[0]
    options = ((container or {}).get("logConfiguration") or {}).get("options") or {}
    for option in ("awslogs-group", "awslogs-stream-prefix"):
        if options.get(option):
            facts[f"<{option}>"] = str(options[option])
    if container is not None and container.get("name"):
        facts["<container>"] = str(container["name"])
    network = (view.description.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    if network.get("subnets"):
        facts["<subnet-ids>"] = " ".join(str(s) for s in network["subnets"])
    groups = [b.get("targetGroupArn") for b in view.description.get("loadBalancers") or [] if b.get("targetGroupArn")]
    if len(groups) == 1:
        facts["<target-group-arn>"] = str(groups[0])
    if len(view.auto_scaling_groups) == 1:
        facts["<asg-name>"] = next(iter(view.auto_scaling_groups))
    if definition.get("executionRoleArn"):
        facts["<execution-role-name>"] = resource_name(str(definition["executionRoleArn"]))
    if definition.get("family"):
        facts["<family>"] = str(definition["family"])
    if region:
        facts["<region>"] = region
    facts["<service>"] = view.name
    return facts


def filled_advice(finding: Finding, facts: Mapping[str, str] | None = None) -> Advice:
    """The finding's advice with the placeholders the facts answer replaced by their values."""
    advice = advice_for(finding)
    if not facts:
        return advice

    def fill(text: str, *, quoted: bool) -> str:
        for placeholder, value in facts.items():
            if placeholder in text:
                words = value.split(" ") if placeholder == "<subnet-ids>" else [value]
                text = text.replace(placeholder, " ".join(shlex.quote(w) for w in words) if quoted else value)
        return text

    return replace(
        advice, fix=fill(advice.fix, quoted=False), commands=tuple(fill(c, quoted=True) for c in advice.commands)
    )


def finding_to_dict(finding: Finding, facts: Mapping[str, str] | None = None) -> dict[str, Any]:
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
        "advice": filled_advice(finding, facts).to_dict(),
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
        printable(text),
        _WIDTH,
        initial_indent=prefix,
        subsequent_indent=" " * len(prefix),
        break_on_hyphens=False,
        break_long_words=False,
    ) or [prefix]


def _short(source: str) -> str:
    return source.rsplit("/", 1)[-1] if source.startswith("arn:") else source


def _render_block(block: _Block, facts: Callable[[Finding], Mapping[str, str]] | None) -> list[str]:
    example = block.example
    count = len(block.findings)
    marker = "FAIL" if example.failure else "ok  "
    times = f" x{count}" if count > 1 else ""
    lines = [f"  {marker} {example.cause.value}{times}: {printable(example.summary)}"]
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
        advice = filled_advice(example, facts(example) if facts else None)
        lines += _wrap("fix", advice.fix)
        # Commands stay on one line each, so they can be copied and run as printed.
        lines += [f"{' ' * 15}$ {printable(command)}" for command in advice.commands]
    return lines


def render_text(findings: Sequence[Finding], facts: Callable[[Finding], Mapping[str, str]] | None = None) -> str:
    """The report a person reads at 3 a.m.: what is broken, why, and the command that fixes it.

    `facts` gives, for a finding, the values live diagnosis read for its advice's placeholders.
    """
    failures = sum(1 for f in findings if f.failure)
    services = {(f.cluster, f.service) for f in findings if f.service}
    header = (
        f"{plural(len(findings), 'finding')}, {plural(failures, 'failure')}, across {plural(len(services), 'service')}"
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
        title = (
            f"{printable(cluster)} / {printable(service)}"
            if service
            else f"{printable(cluster)} (tasks not started by a service)"
        )
        state = plural(failing, "failure") if failing else "no failures"
        lines += ["", f"{title}: {state}"]
        for block in service_blocks:
            lines += _render_block(block, facts)
    return "\n".join(lines) + "\n"


def render_proposals(proposals: Sequence[Proposal]) -> str:
    """Proposals for people: what would change (or changed), why, and the command that does it."""
    if not proposals:
        return "No proposals: no policy applies to what was found.\n"
    order = {"failed": 0, "applied": 1, "awaiting_approval": 2, "proposed": 3}
    lines = [f"{plural(len(proposals), 'proposal')} ({proposals[0].mode.value})"]
    for proposal in sorted(proposals, key=lambda p: (order.get(p.outcome.value, 4), p.cluster, p.service)):
        status = proposal.outcome.value.upper()
        where = f"{printable(proposal.cluster)} / {printable(proposal.service)}"
        lines += ["", f"  {status} {where}: {proposal.action} (policy {proposal.policy}, cause {proposal.cause})"]
        lines += _wrap("what", proposal.plan.summary)
        for change in proposal.plan.changes:
            lines += _wrap("change", f"{change.field}: {show_value(change.current)} -> {show_value(change.desired)}")
        if proposal.reason:
            lines += _wrap("status", proposal.reason)
        lines += _wrap("id", proposal.id)
        for index, line in enumerate(proposal.evidence[:4]):
            lines += _wrap("evidence" if index == 0 else "", line)
        lines += [f"{' ' * 15}$ {printable(command)}" for command in proposal.plan.commands]
    return "\n".join(lines) + "\n"
