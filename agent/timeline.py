"""A timeline per service, from the passes of `demo` or `once --passes N`: a self-contained HTML page.

People would rather look than read: one row per service, time across; failures as they happened
(coloured by cause), proposals, changes applied, verdicts (verified, not effective) and recovery.
Drawn with matplotlib as inline SVG, so the page needs nothing else (no script, no network); a table
under the chart lists the same events in words. A `.svg` file name gets the chart alone.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib as mpl

mpl.use("svg")  # no display, no GUI toolkit: the chart is written as SVG text
mpl.rcParams["svg.hashsalt"] = "ecs-medic"  # stable element ids, so a page can be compared with another

import matplotlib.dates as mdates  # noqa: E402 - the backend is chosen before pyplot loads
import matplotlib.pyplot as plt  # noqa: E402

from agent.decide import Outcome  # noqa: E402
from agent.model import Risk  # noqa: E402
from agent.report import printable  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes

    from agent.telemetry import PassReport

Key = tuple[str, str, str]  # (group, cluster, service): the demo groups rows by scenario
# What each kind of event looks like: marker, colour, label.
_STYLE: dict[str, tuple[str, str, str]] = {
    "proposed": ("^", "#1f77b4", "proposed"),
    "awaiting_approval": ("v", "#9467bd", "awaiting approval"),
    "applied": ("D", "#2ca02c", "change applied"),
    "notified": ("o", "#8c564b", "fix sent to a person (notify)"),
    "failed": ("X", "#000000", "action failed"),
    "verified": ("*", "#2ca02c", "verified"),
    "not_effective": ("s", "#ff7f0e", "not effective"),
}
_SHOWN_OUTCOMES = {Outcome.PROPOSED, Outcome.AWAITING_APPROVAL, Outcome.APPLIED, Outcome.FAILED}
_PREVENTION = frozenset(risk.value for risk in Risk)  # advice, not part of an incident's story


def _x(at: datetime) -> float:
    """A time as matplotlib's date axis counts it."""
    return float(mdates.date2num(at))  # type: ignore[no-untyped-call]


def _label(key: Key) -> str:
    group, cluster, service = (printable(part) for part in key)
    where = f"{cluster}/{service}" if cluster else service
    return f"{group}: {where}" if group else where


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    key: Key
    kind: str  # a cause for a failure, else a key of _STYLE, or "recovered"
    text: str
    failure: bool = False


@dataclass
class Timeline:
    """Events recorded pass by pass; each ECS item and each proposal status is recorded once."""

    title: str
    events: list[Event] = field(default_factory=list)
    passes: list[tuple[datetime, str]] = field(default_factory=list)  # (time, result)
    _seen: set[tuple[object, ...]] = field(default_factory=set)
    _failing: set[Key] = field(default_factory=set)
    _services: dict[Key, None] = field(default_factory=dict)

    def _once(self, token: tuple[object, ...], event: Event) -> None:
        if token not in self._seen:
            self._seen.add(token)
            self.events.append(event)
        self._services.setdefault(event.key, None)

    def record(
        self, report: PassReport, healthy: Mapping[tuple[str, str], bool] | None = None, group: str = ""
    ) -> None:
        """Add one pass. `healthy`, when known (the simulated world knows), marks recoveries; `group`
        labels the rows (the demo runs each scenario in its own world, where names repeat)."""
        at = report.finished_at
        self.passes.append((at, report.result))
        for finding in report.findings:
            if not finding.failure or not finding.service:
                continue
            key = (group, finding.cluster, finding.service)
            self._failing.add(key)
            when = finding.occurred_at or at
            self._once(
                ("finding", finding.source, finding.cause.value),
                Event(when, key, finding.cause.value, finding.summary, failure=True),
            )
        for proposal in report.proposals:
            if proposal.outcome not in _SHOWN_OUTCOMES or proposal.cause in _PREVENTION:
                continue
            key = (group, proposal.cluster, proposal.service)
            text = f"{proposal.action}: {proposal.plan.summary}"
            kind = proposal.outcome.value
            if proposal.action == "notify" and proposal.outcome is Outcome.APPLIED:
                kind = "notified"  # nothing changed: a person was given the fix
            self._once(("proposal", proposal.id, kind), Event(at, key, kind, text))
        for cluster, service, action, verdict in report.verifications:
            key = (group, cluster, service)
            self._once(("verdict", key, action, at), Event(at, key, verdict.value, f"{action} {verdict.value}"))
        for (cluster, service), ok in (healthy or {}).items():
            key = (group, cluster, service)
            if ok and key in self._failing:
                self._failing.discard(key)
                self._once(("recovered", key, at), Event(at, key, "recovered", "steady again"))

    # --- drawing ---------------------------------------------------------------------------------------

    def svg(self) -> str:
        """The chart as SVG text."""
        services = list(self._services) or [("", "", "(no service showed a failure)")]
        rows = {key: index for index, key in enumerate(reversed(services))}
        figure, axes = plt.subplots(figsize=(11, 1.2 + 0.55 * len(services)))
        try:
            self._draw(axes, rows)
            buffer = io.StringIO()
            # No creator or date in the file: the same passes give the same page.
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Creator": None, "Date": None})
        finally:
            plt.close(figure)
        text = buffer.getvalue()
        return text[text.index("<svg") :]  # drop the XML prologue and DOCTYPE: the SVG goes inline

    def _draw(self, axes: Axes, rows: Mapping[Key, int]) -> None:
        causes = sorted({e.kind for e in self.events if e.failure})
        palette = plt.get_cmap("tab10")
        colours = {cause: palette(index % 10) for index, cause in enumerate(causes)}
        for cause in causes:
            points = [(e.at, rows[e.key]) for e in self.events if e.failure and e.kind == cause]
            axes.scatter(
                [_x(at) for at, _ in points],
                [row for _, row in points],
                marker="|",
                s=160,
                color=colours[cause],
                label=f"failure: {cause}",
                zorder=2,
            )
        for kind, (marker, colour, label) in _STYLE.items():
            points = [(e.at, rows[e.key]) for e in self.events if e.kind == kind]
            if points:
                axes.scatter(
                    [_x(at) for at, _ in points],
                    [row + 0.22 for _, row in points],
                    marker=marker,
                    s=70,
                    color=colour,
                    edgecolors="white",
                    linewidths=0.6,
                    label=label,
                    zorder=3,
                )
        end = max((at for at, _ in self.passes), default=None)
        for event in (e for e in self.events if e.kind == "recovered"):
            if end is not None and end > event.at:
                axes.barh(
                    rows[event.key],
                    _x(end) - _x(event.at),
                    left=_x(event.at),
                    height=0.5,
                    color="#2ca02c",
                    alpha=0.15,
                    zorder=1,
                )
        blind = [at for at, result in self.passes if result == "error"]
        if blind:
            axes.scatter(
                [_x(at) for at in blind],
                [-0.7] * len(blind),
                marker="o",
                s=20,
                color="#d62728",
                label="pass saw nothing",
            )
        axes.set_yticks(list(rows.values()), [_label(key) for key in rows])
        axes.set_ylim(-1, len(rows))
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
        axes.set_xlabel("time (UTC)")
        axes.grid(axis="x", alpha=0.3)
        axes.set_title(self.title, loc="left")
        if self.events or blind:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)

    # --- the page --------------------------------------------------------------------------------------

    def html(self) -> str:
        rows = "\n".join(
            f"<tr><td>{e.at:%Y-%m-%d %H:%M:%S}</td><td>{html.escape(_label(e.key))}</td><td>{html.escape(e.kind)}</td>"
            f"<td>{html.escape(printable(e.text))}</td></tr>"
            for e in sorted(self.events, key=lambda e: (e.at, e.key))
        )
        results = [result for _, result in self.passes]
        summary = (
            f"{len(self.passes)} passes ({results.count('ok')} ok, {results.count('partial')} partial, "
            f"{results.count('error')} saw nothing)"
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
            "svg{max-width:100%;height:auto}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p>{summary}</p>\n{self.svg()}\n"
            "<h2>Events</h2><table><tr><th>time (UTC)</th><th>service</th><th>what</th><th>detail</th></tr>\n"
            f"{rows}\n</table></body></html>\n"
        )

    def write(self, path: Path) -> None:
        Path(path).write_text(self.svg() if Path(path).suffix == ".svg" else self.html(), encoding="utf-8")
