"""Notifications in the deployment artifacts: the settings reach the agent, and IAM grants
`sns:Publish` on the configured topic only (in both modes: dry-run sends notifications) and
`secretsmanager:GetSecretValue` on the webhook secret only. (The chart's notify values are tested in
test_helm.py, with its `helm` fixture.)"""

from __future__ import annotations

import json

from tests.deploy.conftest import STANDALONE_POLICY, load_cfn
from tests.deploy.iam import actions_of

NOTIFY_ACTIONS = {"sns:Publish", "secretsmanager:GetSecretValue"}


def _statements_granting(document: dict, actions: set[str]) -> list[tuple[str | None, dict]]:
    """(condition, statement) for each statement of `document` granting one of `actions`."""
    found = []
    for entry in document["Statement"]:
        condition, statement = (entry["Fn::If"][0], entry["Fn::If"][1]) if "Fn::If" in entry else (None, entry)
        if set(actions_of(statement)) & actions:
            found.append((condition, statement))
    return found


def test_cloudformation_grants_publish_on_the_topic_only_in_both_modes():
    template = load_cfn()
    resources = template["Resources"]
    (observe,) = [p for p in resources["TaskRole"]["Properties"]["Policies"] if p["PolicyName"] == "ecs-medic-observe"]
    granted = _statements_granting(observe["PolicyDocument"], NOTIFY_ACTIONS)
    assert granted == [
        (
            "WithNotifyTopic",
            {
                "Sid": "NotifyPublishToTopic",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": {"Ref": "NotifySnsTopicArn"},
            },
        ),
        (
            "WithNotifyWebhookSecret",
            {
                "Sid": "NotifyReadWebhookSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": {"Ref": "NotifyWebhookSecretArn"},
            },
        ),
    ]
    conditions = template["Conditions"]
    assert conditions["WithNotifyTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotifySnsTopicArn"}, ""]}]}
    assert "Enforce" not in json.dumps(conditions["WithNotifyTopic"])  # granted in dry-run too
    actions_policy = resources["ActionsPolicy"]["Properties"]["PolicyDocument"]
    assert _statements_granting(actions_policy, NOTIFY_ACTIONS) == []
    parameters = template["Parameters"]
    assert parameters["NotifySnsTopicArn"]["Default"] == parameters["NotifyWebhookSecretArn"]["Default"] == ""


def test_cloudformation_maps_the_parameters_to_the_settings():
    container = load_cfn()["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    conditional = {
        e["Fn::If"][1]["Name"]: (e["Fn::If"][0], e["Fn::If"][1]["Value"])
        for e in container["Environment"]
        if "Fn::If" in e
    }
    plain = {e["Name"]: e["Value"] for e in container["Environment"] if "Name" in e}
    assert conditional["ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN"] == ("WithNotifyTopic", {"Ref": "NotifySnsTopicArn"})
    assert conditional["ECS_MEDIC_NOTIFY_WEBHOOK_SECRET_ARN"] == (
        "WithNotifyWebhookSecret",
        {"Ref": "NotifyWebhookSecretArn"},
    )
    assert plain["ECS_MEDIC_NOTIFY_WEBHOOK_FORMAT"] == {"Ref": "NotifyWebhookFormat"}


def test_standalone_policy_names_one_topic_and_one_secret():
    statements = json.loads(STANDALONE_POLICY.read_text())["Statement"]
    granted = {action: s["Resource"] for s in statements for action in actions_of(s) if action in NOTIFY_ACTIONS}
    assert granted == {
        "sns:Publish": "arn:aws:sns:*:*:ecs-medic-notifications",
        "secretsmanager:GetSecretValue": "arn:aws:secretsmanager:*:*:secret:ecs-medic/webhook-*",
    }
