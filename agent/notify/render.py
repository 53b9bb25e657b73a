"""Pure renderers: a notification as an email-readable SNS message and as a chat webhook payload.

Everything that came from AWS or an application (service names, ECS messages, log lines, commands
built from them) is cleaned before it is shown: terminal escape sequences, control and invisible
formatting characters are removed, so a crafted container message cannot rewrite a terminal, hide
text, or forge a mention or a link in a chat.

- SNS: a subject under 100 ASCII characters, a plain-text body an email client shows as is, and
  message attributes (event, cluster, service, cause, action, outcome, policy) that subscription
  filter policies can match.
- Webhooks: Slack-compatible JSON (Block Kit `blocks` with a complete `text` fallback), which
  Mattermost accepts too; or `{"text": ...}` alone for receivers that refuse unknown fields, such
  as Google Chat.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from agent.notify.events import Kind, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.notify.events import Change, Notification

# Terminal escape sequences: CSI (colours, cursor moves), OSC (titles, hyperlinks), and the short ones.
_ANSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_MENTION = re.compile(r"@(channel|here|all|everyone)\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")

SUBJECT_LIMIT = 99  # SNS: "less than 100 characters", ASCII, no line breaks or control characters
HEADER_LIMIT = 150  # Block Kit header text
SECTION_LIMIT = 3000  # Block Kit section text
FIELD_LIMIT = 2000  # Block Kit section field text
MAX_EVIDENCE = 15
MAX_COMMANDS = 8
LINE_LIMIT = 600
COMMAND_LIMIT = 4000


def clean(value: object, *, multiline: bool = False, limit: int | None = None) -> str:
    """`value` as text safe to show: no escape sequences, control or invisible formatting characters.

    One line unless `multiline` (then line breaks are kept, tabs become spaces); cut to `limit`
    characters with an ellipsis.
    """
    text = _ANSI.sub("", str(value)).replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = "".join(char for char in text if char == "\n" or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co"))
    text = (
        "\n".join(line.rstrip() for line in text.split("\n")).strip() if multiline else _SPACES.sub(" ", text).strip()
    )
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _ascii(text: str) -> str:
    """ASCII only (SNS subjects): accents dropped, anything else replaced."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return folded if folded.strip() else text.encode("ascii", "replace").decode("ascii")


def show(value: object) -> str:
    """A changed field's value: text as is, anything else as compact JSON (its strings cleaned)."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(_cleaned(value), sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def _cleaned(value: object) -> object:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(key): _cleaned(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(item) for item in value]
    return value


# --- what every rendering says ----------------------------------------------------------------------------

_VERDICT_WORDS = {
    Verdict.VERIFIED: "Verified",
    Verdict.NOT_EFFECTIVE: "Not effective",
    Verdict.REVERTED: "Reverted",
    Verdict.ESCALATED: "Escalated",
}


def headline(notification: Notification) -> str:
    """One line: what changed, for which service."""
    if notification.title:
        return clean(notification.title, limit=HEADER_LIMIT)
    n = notification
    where, action = clean(n.subject), clean(n.action)
    match n.kind:
        case Kind.APPROVAL_NEEDED:
            text = f"Approval needed: {action} for {where}"
        case Kind.PROPOSED:
            text = f"Proposed: {action} for {where}"
        case Kind.APPLIED:
            text = f"Applied: {action} to {where}"
        case Kind.VERDICT:
            verdict = n.verdict or Verdict.VERIFIED
            text = f"{_VERDICT_WORDS[verdict]}: {action} on {where}"
        case Kind.PAUSED:
            text = f"Paused: enforcement in cluster {where}"
        case Kind.RESUMED:
            text = f"Resumed: enforcement in cluster {where}"
        case Kind.FIX_NEEDED:
            text = f"Fix needed: {clean(n.cause) or 'a failure'} in {where}"
    return clean(text, limit=HEADER_LIMIT)


def facts(notification: Notification) -> list[tuple[str, str]]:
    """The labelled facts, in a fixed order, the empty ones left out."""
    n = notification
    pairs = [
        ("Cluster", n.cluster),
        ("Service", n.service),
        ("Cause", n.cause),
        ("Action", n.action),
        ("Policy", n.policy),
        ("Proposal", n.proposal_id),
        ("Outcome", n.outcome),
        ("When", n.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if n.occurred_at else ""),
    ]
    return [(label, clean(value, limit=LINE_LIMIT)) for label, value in pairs if value]


def sentence(text: str) -> str:
    """`text` cleaned, starting with a capital (plans' summaries start in lower case)."""
    cleaned = clean(text, multiline=True)
    return cleaned[:1].upper() + cleaned[1:]


def _limited(items: tuple[str, ...], most: int, limit: int, *, multiline: bool = False) -> list[str]:
    shown = [clean(item, multiline=multiline, limit=limit) for item in items[:most]]
    shown = [item for item in shown if item]
    if len(items) > most:
        shown.append(f"({len(items) - most} more)")
    return shown


def _change_line(change: Change) -> str:
    return clean(f"{change.field}: {show(change.current)} → {show(change.desired)}", limit=LINE_LIMIT)


# --- SNS (email, SMS, AWS Chatbot, queues) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnsMessage:
    subject: str
    body: str
    attributes: dict[str, dict[str, str]]


ATTRIBUTES = ("event", "cluster", "service", "cause", "action", "outcome", "policy")


def sns_subject(notification: Notification) -> str:
    subject = _ascii(f"ecs-medic: {headline(notification)}")
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3].rstrip() + "..."


def email_body(notification: Notification) -> str:
    """The plain-text message: readable in an email client, a terminal or an SQS queue."""
    n = notification
    lines = [headline(n), ""]
    summary = sentence(n.summary)
    if summary:
        lines += [summary, ""]
    labelled = facts(n)
    width = max((len(label) for label, _ in labelled), default=0)
    lines += [f"{label.ljust(width)}  {value}" for label, value in labelled]
    reason = sentence(n.reason)
    if reason:
        lines += ["", "Why", *_indent(reason)]
    evidence = _limited(n.evidence, MAX_EVIDENCE, LINE_LIMIT)
    if evidence:
        lines += ["", "Evidence", *(f"  - {line}" for line in evidence)]
    if n.changes:
        lines += ["", "Changes", *(f"  - {_change_line(change)}" for change in n.changes)]
    commands = _limited(n.commands, MAX_COMMANDS, COMMAND_LIMIT, multiline=True)
    if commands:
        lines += ["", "Commands"]
        for command in commands:
            lines += _indent(command)
    if n.approve_command:
        lines += ["", "To approve, run", *_indent(clean(n.approve_command))]
    lines += ["", "--", f"ecs-medic sends this once per change of state (key {clean(n.key)})."]
    return "\n".join(lines) + "\n"


def _indent(text: str) -> list[str]:
    return [f"  {line}" if line else "" for line in text.split("\n")]


def sns_attributes(notification: Notification) -> dict[str, dict[str, str]]:
    """String attributes for subscription filter policies; empty values are left out (SNS refuses them)."""
    n = notification
    values = {
        "event": n.kind.value,
        "cluster": n.cluster,
        "service": n.service,
        "cause": n.cause,
        "action": n.action,
        "outcome": n.outcome,
        "policy": n.policy,
    }
    return {
        name: {"DataType": "String", "StringValue": clean(values[name], limit=256)}
        for name in ATTRIBUTES
        if clean(values[name])
    }


def render_sns(notification: Notification) -> SnsMessage:
    return SnsMessage(sns_subject(notification), email_body(notification), sns_attributes(notification))


# --- chat webhooks -------------------------------------------------------------------------------------------


class WebhookFormat(StrEnum):
    SLACK = "slack"  # Block Kit blocks and a text fallback (Slack, Mattermost)
    TEXT = "text"  # {"text": ...} only (Google Chat, and any receiver that refuses unknown fields)


def _slack_escape(text: str) -> str:
    """Slack's own escaping: `<`, `>` and `&` are markup (links, mentions) unless escaped."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@\u200b\\1", text)


def _plain_escape(text: str) -> str:
    """For receivers without Slack's escaping: angle brackets (their link and mention markup) become
    look-alike quotes, and mention keywords are broken up."""
    text = text.replace("<", "\u2039").replace(">", "\u203a")
    return _MENTION.sub("@\u200b\\1", text)


def _fence(text: str) -> str:
    return "```\n" + text.replace("```", "'''") + "\n```"


def _text_sections(notification: Notification, escape: Callable[[str], str]) -> list[tuple[str, str]]:
    """(title, markdown body) of each part after the headline, escaped for the receiver."""
    n = notification
    sections: list[tuple[str, str]] = []
    summary = sentence(n.summary)
    if summary:
        sections.append(("", escape(summary)))
    reason = sentence(n.reason)
    if reason:
        sections.append(("Why", escape(reason)))
    evidence = _limited(n.evidence, MAX_EVIDENCE, LINE_LIMIT)
    if evidence:
        sections.append(("Evidence", "\n".join(f"• {escape(line)}" for line in evidence)))
    if n.changes:
        sections.append(("Changes", "\n".join(f"• {escape(_change_line(change))}" for change in n.changes)))
    commands = _limited(n.commands, MAX_COMMANDS, COMMAND_LIMIT, multiline=True)
    if commands:
        sections.append(("Commands", _fence(escape("\n".join(commands)))))
    if n.approve_command:
        sections.append(("To approve, run", _fence(escape(clean(n.approve_command)))))
    return sections


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters; a code block cut open is closed again."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 5] + "…"
    return cut + "\n```" if cut.count("```") % 2 else cut


def fallback_text(notification: Notification, fmt: WebhookFormat = WebhookFormat.SLACK) -> str:
    """The whole message as one markdown text (the `text` field)."""
    escape = _slack_escape if fmt is WebhookFormat.SLACK else _plain_escape
    n = notification
    parts = [escape(headline(n))]
    parts.append(" · ".join(f"{label.lower()} {escape(value)}" for label, value in facts(n)))
    for title, body in _text_sections(n, escape):
        parts.append(f"{title}:\n{body}" if title else body)
    return "\n\n".join(parts)


def slack_payload(notification: Notification) -> dict[str, Any]:
    """Slack-compatible JSON: Block Kit blocks, and the full message in `text` for notifications,
    and for receivers (Mattermost) that show only `text`."""
    n = notification
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": headline(n)}}]
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{label}*\n{_slack_escape(value)}", FIELD_LIMIT)} for label, value in facts(n)
    ]
    sections = _text_sections(n, _slack_escape)
    if sections and not sections[0][0]:  # the summary comes first, above the facts
        blocks.append(_section(sections.pop(0)[1]))
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    blocks += [_section(f"*{title}*\n{body}") for title, body in sections]
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(f"ecs-medic · {clean(n.key)}")}]}
    )
    return {"text": _cut(fallback_text(n, WebhookFormat.SLACK), 39000), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_LIMIT)}}


def text_payload(notification: Notification) -> dict[str, Any]:
    return {"text": _cut(fallback_text(notification, WebhookFormat.TEXT), 30000)}


def webhook_payload(notification: Notification, fmt: WebhookFormat) -> dict[str, Any]:
    return slack_payload(notification) if fmt is WebhookFormat.SLACK else text_payload(notification)


def console_text(notification: Notification) -> str:
    """What the console channel prints: the SNS subject and the email body."""
    return f"Subject: {sns_subject(notification)}\n\n{email_body(notification)}"
