"""Settings from the environment: durations as policies write them, bounds, and typos named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.settings import Settings, unknown_variables


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("45", 45), ("2.5", 2.5), ("1m30s", 90)]
)
def test_durations_take_the_forms_policies_take(monkeypatch, value, seconds):
    monkeypatch.setenv("ECS_MEDIC_POLL_INTERVAL_SECONDS", value)
    monkeypatch.setenv("ECS_MEDIC_VERIFY_TIMEOUT_SECONDS", value)
    settings = Settings()
    assert settings.poll_interval_seconds == settings.verify_timeout_seconds == seconds


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ECS_MEDIC_POLL_INTERVAL_SECONDS", "fast", "'fast' is not a duration"),
        ("ECS_MEDIC_POLL_INTERVAL_SECONDS", "2h", "less than or equal to 3600"),
        ("ECS_MEDIC_POLL_INTERVAL_SECONDS", "0s", "greater than 0"),
        ("ECS_MEDIC_APPROVAL_TTL_SECONDS", "inf", "longer than 365d"),
        ("ECS_MEDIC_APPROVAL_TTL_SECONDS", "30d", "less than or equal to 604800"),
        ("ECS_MEDIC_VERIFY_TIMEOUT_SECONDS", "99999999999d", "longer than 365d"),
        ("ECS_MEDIC_VERIFY_TIMEOUT_SECONDS", "nan", "not a duration"),
        ("ECS_MEDIC_REPLICAS", "0", "greater than or equal to 1"),
    ],
)
def test_durations_and_counts_are_bounded(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_defaults(monkeypatch):
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.listen_address, settings.metrics_port, settings.replicas) == ("0.0.0.0", 9740, 1)  # noqa: S104
    assert settings.log_format is None  # JSON for `run`, console for one-shot commands
    assert settings.log_level is None  # info for `run`, warning for one-shot commands
    assert settings.poll_interval_seconds == 30


def test_empty_optional_values_are_unset(monkeypatch):
    monkeypatch.setenv("ECS_MEDIC_LEASE_TABLE", "")
    monkeypatch.setenv("ECS_MEDIC_LOG_FORMAT", " ")
    settings = Settings()
    assert settings.lease_table is None
    assert settings.log_format is None


def test_unknown_variables_name_the_closest_setting():
    environ = {
        "ECS_MEDIC_CLUSTER": "prod",
        "ECS_MEDIC_POLL_INTERVAL": "30s",
        "ECS_MEDIC_MODE": "enforce",
        "ECS_MEDIC_SOMETHING_ELSE_ENTIRELY": "1",
        "ECS_MEDIC_TOOLS_DIR": "/opt/tools",  # read by the repository's scripts
        "AWS_REGION": "eu-west-1",
    }
    assert unknown_variables(environ) == [
        ("ECS_MEDIC_CLUSTER", "ECS_MEDIC_CLUSTERS"),
        ("ECS_MEDIC_POLL_INTERVAL", "ECS_MEDIC_POLL_INTERVAL_SECONDS"),
        ("ECS_MEDIC_SOMETHING_ELSE_ENTIRELY", None),
    ]


def test_every_field_is_documented():
    for name, field in Settings.model_fields.items():
        assert field.description, name
