"""Notification settings, the notifier they build, policy routing in the policy language, and the
README's examples kept in step with the renderers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from agent import logs
from agent.notify import SnsChannel, WebhookChannel, WebhookFormat, channels_from_settings, notifier_from_settings
from agent.notify.examples import readme_section, replace_section
from agent.notify.wiring import dry_run_allows
from agent.policy.loader import parse_policies
from agent.settings import Settings
from tests.notify.conftest import SECRET_PATH

README = Path(__file__).resolve().parents[2] / "README.md"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ecs-medic"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf"


class NoAws:
    def call(self, api, operation, params):
        raise AssertionError(f"no AWS call expected, got {api}:{operation} {params}")


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN", TOPIC)
    monkeypatch.setenv("ECS_MEDIC_NOTIFY_WEBHOOK_URL", "https://hooks.example.com" + SECRET_PATH)
    monkeypatch.setenv("ECS_MEDIC_NOTIFY_WEBHOOK_FORMAT", "text")
    monkeypatch.setenv("ECS_MEDIC_NOTIFY_RATE_PER_MINUTE", "6")
    settings = Settings()
    assert settings.notify_sns_topic_arn == TOPIC
    assert settings.notify_rate_per_minute == 6
    assert SECRET_PATH not in repr(settings) and SECRET_PATH not in str(settings.model_dump())
    channels = channels_from_settings(settings, NoAws())
    assert [type(c) for c in channels] == [SnsChannel, WebhookChannel]
    assert channels[1].fmt is WebhookFormat.TEXT
    for channel in channels:
        channel.close()


def test_empty_settings_mean_no_channel(monkeypatch):
    monkeypatch.setenv("ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN", "")  # what a chart or template sets when unset
    monkeypatch.setenv("ECS_MEDIC_NOTIFY_WEBHOOK_SECRET_ARN", " ")
    settings = Settings()
    assert settings.notify_sns_topic_arn is None and settings.notify_webhook_secret_arn is None
    assert channels_from_settings(settings, NoAws()) == []
    assert not dry_run_allows(settings)("sns", "Publish", {"TopicArn": TOPIC})
    with capture_logs() as lines:
        hub = notifier_from_settings(settings, NoAws(), metrics=None, log=logs.logger())  # type: ignore[arg-type]
    assert hub.channels == [] and hub.close(1)
    assert lines == [{"event": "notifications_configured", "log_level": "info", "channels": []}]


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        pytest.param(
            {"notify_sns_topic_arn": "ecs-medic"}, "notify_sns_topic_arn", "must be an SNS topic ARN", id="topic-name"
        ),
        pytest.param(
            {"notify_sns_topic_arn": "arn:aws:sqs:eu-west-1:123456789012:q"},
            "notify_sns_topic_arn",
            "must be an SNS topic ARN",
            id="queue-arn",
        ),
        pytest.param(
            {"notify_sns_topic_arn": TOPIC + ".fifo"}, "notify_sns_topic_arn", "standard SNS topic", id="fifo-topic"
        ),
        pytest.param(
            {"notify_webhook_secret_arn": TOPIC},
            "notify_webhook_secret_arn",
            "must be a Secrets Manager secret ARN",
            id="secret-arn",
        ),
        pytest.param(
            {"notify_webhook_url": "hooks.example.com" + SECRET_PATH},
            "notify_webhook_url",
            "must be an https:// URL",
            id="url-without-scheme",
        ),
        pytest.param(
            {"notify_webhook_url": "https://hooks.example.com" + SECRET_PATH, "notify_webhook_secret_arn": SECRET},
            "notify_webhook_secret_arn",
            "not both",
            id="both-webhooks",
        ),
        pytest.param({"notify_webhook_format": "teams"}, "notify_webhook_format", "slack", id="format"),
        pytest.param({"notify_rate_per_minute": 0}, "notify_rate_per_minute", "greater than 0", id="rate"),
    ],
)
def test_bad_settings_name_the_setting(settings, field, message):
    with pytest.raises(ValidationError) as raised:
        Settings(**settings)
    errors = raised.value.errors()
    assert [error["loc"] for error in errors] == [(field,)]
    assert message in errors[0]["msg"]
    assert SECRET_PATH not in errors[0]["msg"]  # a webhook URL is a credential, even a wrong one


POLICY = """\
apiVersion: ecs-medic/v1
kind: RemediationPolicy
metadata: {name: oom}
spec:
  when: {cause: oom}
  remediation: {action: notify}
  notify: NOTIFY
"""


def test_a_policy_names_its_channels():
    loaded, errors = parse_policies(POLICY.replace("NOTIFY", "[sns]"), "p.yaml")
    assert errors == [] and loaded[0].policy.spec.notify == ("sns",)
    loaded, errors = parse_policies(POLICY.replace("NOTIFY", "webhook"), "p.yaml")
    assert errors == [] and loaded[0].policy.spec.notify == ("webhook",)
    loaded, errors = parse_policies(POLICY.replace("  notify: NOTIFY\n", ""), "p.yaml")
    assert errors == [] and loaded[0].policy.spec.notify == ()


def test_an_unknown_channel_is_a_clear_error():
    _loaded, errors = parse_policies(POLICY.replace("NOTIFY", "[sns, slack]"), "p.yaml")
    assert [str(error) for error in errors] == [
        "p.yaml:7:11: policy oom: spec.notify: unknown channel 'slack'; valid channels: sns, webhook"
    ]


def test_readme_examples_are_the_renderers_output():
    readme = README.read_text(encoding="utf-8")
    assert readme_section() in readme, "run: python -m agent.notify.examples README.md"
    assert replace_section(readme) == readme


def test_the_package_exports_each_name_from_its_module_and_the_policy_language_loads_no_http_client():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import agent.notify  # noqa: PLC0415

    assert sorted(agent.notify.__all__) == sorted(agent.notify._HOME_OF)
    for name in agent.notify.__all__:
        value = getattr(agent.notify, name)
        assert name == "POLICY_CHANNELS" or value.__module__ == agent.notify._HOME_OF[name]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, agent.policy.schema; print('httpx' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"
