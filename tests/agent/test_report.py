"""Reporting helpers: text that cannot drive a terminal, English, and what /proposals may show."""

from __future__ import annotations

import pytest

from agent.arns import cluster_of_task, parse_arn, region_of, resource_name
from agent.report import plural, printable, show_value


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("clear\x1b[2J\x1b[Hscreen", "clearscreen"),
        ("title\x1b]0;pwned\x07after", "titleafter"),
        ("line\nforged", "line forged"),
        ("back\rover", "back over"),
        ("bell\x07", "bell "),
        ("\u202eevil", " evil"),
        ("csi\x9b2Jx", "csix"),
        ("tab\tkept as space", "tab kept as space"),
    ],
)
def test_printable_removes_escapes_and_controls(raw, shown):
    assert printable(raw) == shown


def test_plurals_and_values_read_as_english():
    assert [plural(n, "finding") for n in (0, 1, 2)] == ["0 findings", "1 finding", "2 findings"]
    assert plural(1, "policy", "policies") == "1 policy"
    assert plural(3, "policy", "policies") == "3 policies"
    assert [show_value(v) for v in (None, "", True, False, 512, "web:3")] == [
        "unset",
        "unset",
        "true",
        "false",
        "512",
        "web:3",
    ]
    assert show_value({"enable": True}) == '{"enable": true}'


def test_render_proposals_never_prints_python_none():
    from agent.actions.base import Change, Plan  # noqa: PLC0415
    from agent.decide import Outcome, Proposal  # noqa: PLC0415
    from agent.report import render_proposals  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415

    plan = Plan(
        action="raise_grace_period",
        summary="raise the grace period",
        changes=(Change("healthCheckGracePeriodSeconds", None, 60),),
        advice=("aws ecs update-service --cluster prod --service web --health-check-grace-period-seconds 60",),
    )
    proposal = Proposal(
        id="p-0123456789",
        cluster="prod",
        service="web",
        service_arn="arn:aws:ecs:us-east-1:123456789012:service/prod/web",
        policy="raise-grace",
        action="raise_grace_period",
        cause="health_check_elb",
        plan=plan,
        evidence=("Task failed ELB health checks",),
        approval="auto",
        mode=Mode.DRY_RUN,
        outcome=Outcome.PROPOSED,
    )
    text = render_proposals([proposal])
    assert text.startswith("1 proposal (dry-run)\n")
    assert "change   healthCheckGracePeriodSeconds: unset -> 60" in text
    assert "None" not in text


def test_arns_are_split_by_botocore():
    arn = "arn:aws:ecs:eu-west-1:123456789012:task/prod/0123456789abcdef"
    assert parse_arn(arn) == {
        "partition": "aws",
        "service": "ecs",
        "region": "eu-west-1",
        "account": "123456789012",
        "resource": "task/prod/0123456789abcdef",
    }
    assert region_of(arn) == "eu-west-1"
    assert cluster_of_task(arn) == "prod"
    assert cluster_of_task("arn:aws:ecs:eu-west-1:123456789012:task/0123456789abcdef") is None  # old format
    assert resource_name("arn:aws-cn:ecs:cn-north-1:123456789012:cluster/prod") == "prod"
    assert resource_name("prod") == "prod"
    assert region_of("arn:aws:iam::123456789012:role/x") is None
    assert parse_arn("arn:aws:ecs") is None
    assert region_of(None) is None
