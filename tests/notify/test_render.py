"""The renderers: a readable snapshot of each kind's content, the receivers' limits, and nothing
from AWS or an application shown raw."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest

from agent.notify import Change, Kind, Notification, Verdict
from agent.notify.examples import examples, verdict
from agent.notify.render import (
    SUBJECT_LIMIT,
    WebhookFormat,
    clean,
    email_body,
    fallback_text,
    headline,
    slack_payload,
    sns_attributes,
    sns_subject,
    text_payload,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
# ECS_MEDIC_UPDATE_SNAPSHOTS=1 rewrites the snapshots from the renderers (then review the diff).
UPDATE = os.environ.get("ECS_MEDIC_UPDATE_SNAPSHOTS") == "1"

KINDS = [
    *(pytest.param(n, id=n.kind.value) for n in examples() if n.kind is not Kind.VERDICT),
    *(pytest.param(verdict(v), id=f"verdict-{v.value}") for v in Verdict),
]


def snapshot(notification: Notification) -> str:
    """Every rendering of one notification, as a person reviews them."""
    attributes = ", ".join(f"{name}={value['StringValue']}" for name, value in sns_attributes(notification).items())
    return "\n".join(
        [
            f"== SNS subject\n{sns_subject(notification)}",
            f"== SNS message attributes\n{attributes}",
            f"== SNS message (plain text, as an email shows it)\n{email_body(notification)}",
            f"== webhook, format text\n{text_payload(notification)['text']}\n",
            f"== webhook, format slack\n{json.dumps(slack_payload(notification), indent=2, ensure_ascii=False)}\n",
        ]
    )


@pytest.mark.parametrize("notification", KINDS)
def test_snapshot_of_each_kind(notification):
    name = notification.kind.value + (f"-{notification.verdict.value}" if notification.verdict else "")
    path = SNAPSHOTS / f"{name}.txt"
    rendered = snapshot(notification)
    if UPDATE:
        path.write_text(rendered, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == rendered


def test_every_kind_has_an_example_and_a_headline():
    assert {n.kind for n in examples()} == set(Kind)
    headlines = {headline(n) for n in examples()} | {headline(verdict(v)) for v in Verdict}
    assert len(headlines) == len(Kind) - 1 + len(Verdict)  # each says something different


HOSTILE = (
    "\x1b[31mred\x1b[0m \x1b]0;pwned\x07title \x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ "
    "bell\x07 nul\x00 del\x7f c1\x9b2J bidi\u202eevil\u202c zero\u200bwidth bom\ufeff cr\r\nnext "
    "<!channel> <https://evil.example|click> @here & @everyone"
)


def hostile() -> Notification:
    return Notification(
        kind=Kind.APPROVAL_NEEDED,
        key="p-1:awaiting_approval",
        cluster="prod\x1b[2J",
        service="web\u202e",
        cause="app_crash",
        action="rollback_task_definition",
        policy="rollback-bad-deploy",
        proposal_id="p-1",
        summary=HOSTILE,
        evidence=(HOSTILE, HOSTILE),
        changes=(Change("taskDefinition", HOSTILE, {"nested": HOSTILE}),),
        commands=(f"aws ecs update-service --cluster prod --service web # {HOSTILE}", "```\nbreak out```"),
        reason=HOSTILE,
    )


def strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def forbidden(text: str) -> list[str]:
    allowed = {"\n", "\u200b"}  # line breaks; the zero-width space that breaks up mention keywords
    return [
        repr(char) for char in text if char not in allowed and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co")
    ]


def test_nothing_from_aws_or_an_application_is_shown_raw():
    n = hostile()
    renderings = [
        sns_subject(n),
        email_body(n),
        *strings(sns_attributes(n)),
        *strings(slack_payload(n)),
        *strings(text_payload(n)),
    ]
    for text in renderings:
        assert forbidden(text) == [], text
        assert "pwned" not in text  # a terminal title sequence goes whole, not only its escape character
        assert "c1 2J" not in text and "c12J" not in text  # and so does a C1 control sequence
    # In chat, nothing can become a link or a mention: no raw angle brackets, mention keywords broken up.
    for text in [*strings(slack_payload(n)), *strings(text_payload(n))]:
        assert "<" not in text and ">" not in text, text
        assert "@here" not in text and "@everyone" not in text and "@channel" not in text
    assert "&lt;!channel&gt;" in slack_payload(n)["text"]
    # Commands stay in their code block: a command cannot close it and go on as markup.
    assert fallback_text(n).count("```") % 2 == 0
    assert "'''" in fallback_text(n)
    assert clean("a\tb\r\nc", multiline=True) == "a    b\nc"
    assert clean("a\n\n b") == "a b"


def test_sns_subject_is_short_ascii_and_one_line():
    long = Notification(
        kind=Kind.FIX_NEEDED,
        key="k",
        cluster="produção-" + "x" * 150,
        service="sérvice\nname",
        cause="image_pull_auth",
    )
    subject = sns_subject(long)
    assert len(subject) <= SUBJECT_LIMIT < 100
    assert subject.isascii() and subject.isprintable()
    assert subject.startswith("ecs-medic: Fix needed: image_pull_auth in producao-xxx") and subject.endswith("...")


def test_sizes_stay_within_what_receivers_accept():
    huge = Notification(
        kind=Kind.FIX_NEEDED,
        key="k",
        cluster="prod",
        service="web",
        summary="s" * 10_000,
        evidence=tuple(f"line {i} " + "e" * 5000 for i in range(100)),
        changes=tuple(Change(f"field{i}", "a" * 3000, "b" * 3000) for i in range(20)),
        commands=tuple("aws " + "c" * 10_000 for _ in range(30)),
        reason="r" * 5000,
    )
    payload = slack_payload(huge)
    assert len(payload["blocks"]) <= 50
    assert len(payload["text"]) <= 40_000
    for block in payload["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
            assert block["text"]["text"].count("```") % 2 == 0  # a cut code block is closed again
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
        assert len(block.get("fields", [])) <= 10
    assert len(email_body(huge).encode()) < 256 * 1024  # SNS's message limit
    assert "(85 more)" in email_body(huge) and "(22 more)" in email_body(huge)
    assert len(text_payload(huge)["text"]) <= 30_000


def test_sns_attributes_leave_out_empty_values():
    paused = next(n for n in examples() if n.kind is Kind.PAUSED)
    assert sns_attributes(paused) == {
        "event": {"DataType": "String", "StringValue": "paused"},
        "cluster": {"DataType": "String", "StringValue": "prod"},
        "outcome": {"DataType": "String", "StringValue": "paused"},
    }


def test_text_format_is_text_only_and_slack_format_has_blocks():
    n = examples()[0]
    assert set(text_payload(n)) == {"text"}
    assert set(slack_payload(n)) == {"text", "blocks"}
    assert fallback_text(n, WebhookFormat.TEXT) == text_payload(n)["text"]


def test_notification_defaults_and_checks():
    n = Notification(kind=Kind.APPROVAL_NEEDED, key="p-1:awaiting", cluster="prod", service="web", proposal_id="p-1")
    assert n.approve_command == "ecs-medic approve p-1" and n.outcome == "awaiting_approval"
    judged = Notification(kind="verdict", key="p-1:escalated", cluster="prod", verdict="escalated")  # type: ignore[arg-type]
    assert judged.verdict is Verdict.ESCALATED and judged.outcome == "escalated" and judged.subject == "prod"
    with pytest.raises(ValueError, match="verdict"):
        Notification(kind=Kind.VERDICT, key="k", cluster="prod")
    with pytest.raises(ValueError, match="verdict"):
        Notification(kind=Kind.APPLIED, key="k", cluster="prod", verdict=Verdict.VERIFIED)
    with pytest.raises(ValueError, match="dedupe key"):
        Notification(kind=Kind.APPLIED, key="", cluster="prod")
