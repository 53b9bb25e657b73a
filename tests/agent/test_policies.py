"""Policy files: every shipped one loads; bad ones are refused with file, line, policy, field and choices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.actions import REGISTRY
from agent.model import Cause
from agent.policy.duration import format_duration, parse_duration
from agent.policy.loader import PolicyLoadError, load_policies
from agent.policy.watch import PolicySource

POLICIES = Path(__file__).resolve().parents[2] / "policies"
GOOD = """\
apiVersion: ecs-medic/v1
kind: RemediationPolicy
metadata: {name: raise-grace}
spec:
  when: {cause: health_check_elb, occurrences: 3, within: 15m}
  remediation: {action: raise_grace_period, params: {factor: 2}}
"""


def refused(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(tmp_path)
    return [str(error).replace(f"{tmp_path}/", "") for error in caught.value.errors]


def test_every_shipped_policy_loads_and_one_per_failure_of_the_guide():
    loaded = load_policies(POLICIES)
    actions = {p.policy.spec.remediation.action for p in loaded.policies}
    assert actions == set(REGISTRY)
    causes = {c for p in loaded.policies for c in p.policy.spec.when.cause}
    for cause in (
        "health_check_elb",
        "image_not_found",
        "app_crash",
        "entrypoint_error",
        "placement_cpu",
        "placement_memory",
        "oom",
        "image_pull_auth",
        "image_pull_network",
        "capacity_quota",
    ):
        assert Cause(cause) in causes
    risks = {p.policy.spec.when.risk for p in loaded.policies if p.policy.spec.when.risk}
    assert {r.value for r in risks} == {
        "circuit_breaker_disabled",
        "no_grace_period_behind_load_balancer",
        "mutable_image_tag",
    }
    assert next(p for p in loaded.policies if p.name == "raise-memory-on-oom").policy.spec.approval == "manual"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("cause: health_check_elb", "cause: helth_check_elb"),
            "p.yaml:5:17: policy raise-grace: spec.when.cause[0]: Input should be 'image_pull_auth'",
            id="unknown-cause-lists-choices",
        ),
        pytest.param(
            ("action: raise_grace_period", "action: reboot"),
            "p.yaml:6:25: policy raise-grace: spec.remediation.action: unknown action 'reboot'; valid actions: "
            "enable_circuit_breaker, notify, raise_grace_period, raise_memory, rollback_task_definition, scale_capacity_provider",
            id="unknown-action",
        ),
        pytest.param(
            ("factor: 2", "factr: 2"),
            "p.yaml:6:54: policy raise-grace: spec.remediation.params.factr: unknown field 'factr'; valid fields: factor, min_seconds, max_seconds",
            id="unknown-param",
        ),
        pytest.param(
            ("within: 15m", "within: soon"),
            "p.yaml:5:59: policy raise-grace: spec.when.within: 'soon' is not a duration; write e.g. 90s, 15m, 1h or 1h30m",
            id="bad-duration",
        ),
        pytest.param(
            ("occurrences: 3", "occurences: 3"),
            "p.yaml:5:35: policy raise-grace: spec.when.occurences: unknown field 'occurences'; valid fields: cause, risk",
            id="typo-field-lists-fields",
        ),
        pytest.param(
            ("metadata: {name: raise-grace}", "metadata: {name: Raise_Grace}"),
            "p.yaml:3:18: policy Raise_Grace: metadata.name: a name is 1-63 lower-case letters",
            id="bad-name",
        ),
        pytest.param(
            ("when: {", "when: {{"),
            "p.yaml:6:3: policy <file>: not valid YAML: expected ',' or '}'",
            id="yaml-syntax",
        ),
    ],
)
def test_bad_policies_are_refused_with_location_and_choices(tmp_path, edit, expected):
    errors = refused(tmp_path, GOOD.replace(*edit))
    assert any(error.startswith(expected) for error in errors), errors


def test_every_problem_is_reported_at_once(tmp_path):
    errors = refused(
        tmp_path, GOOD.replace("factor: 2", "factor: 0").replace("within: 15m", "within: x") + "---\n" + GOOD
    )
    fields = {error.split(": ")[2] for error in errors}
    assert fields == {"spec.when.within", "spec.remediation.params.factor"}


def test_duplicate_names_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(PolicyLoadError, match="duplicate name"):
        load_policies(tmp_path)


def test_a_bad_edit_keeps_the_last_good_set(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    source = PolicySource(tmp_path)
    assert source.refresh().changed
    assert source.refresh().changed is False
    path.write_text(GOOD.replace("raise_grace_period", "nope"))
    os.utime(path, ns=(1, 1))
    reload = source.refresh()
    assert reload.error is not None
    assert "unknown action 'nope'" in str(reload.error)
    assert [p.name for p in source.policies().policies] == ["raise-grace"]


def test_a_bad_first_load_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("kind: nothing")
    with pytest.raises(PolicyLoadError):
        PolicySource(tmp_path).refresh()


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


def test_a_repeated_key_is_an_error_naming_both_lines(tmp_path):
    errors = refused(tmp_path, GOOD + "  cooldown: 5m\n  cooldown: 10m\n")
    assert errors == [
        "p.yaml:8:3: policy raise-grace: spec.cooldown: duplicate key (first on line 7, again on line 8); keep one"
    ]


def test_a_repeated_key_in_a_flow_mapping_is_found(tmp_path):
    errors = refused(tmp_path, GOOD.replace("metadata: {name: raise-grace}", "metadata: {name: a, name: b}"))
    assert errors == [
        "p.yaml:3:21: policy b: metadata.name: duplicate key (first on line 3, again on line 3); keep one"
    ]


def test_a_single_glob_where_a_list_is_expected_is_a_one_item_list(tmp_path):
    (tmp_path / "p.yaml").write_text(GOOD.replace("spec:\n", 'spec:\n  selector: {clusters: prod, services: "*"}\n'))
    [policy] = load_policies(tmp_path).policies
    assert policy.policy.spec.selector.clusters == ("prod",)
    assert policy.policy.spec.selector.services == ("*",)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("within: 15m", "within: .inf"), "spec.when.within: inf is longer than 365d, the longest duration accepted"),
        (("within: 15m", "within: 8d"), "spec.when.within: 8d is longer than 7d, the longest window accepted"),
        (("within: 15m", "within: .nan"), "spec.when.within: nan is not a duration; write e.g. 90s, 15m, 1h or 1h30m"),
        (
            ("spec:\n", "spec:\n  cooldown: 99999999999d\n"),
            "spec.cooldown: 99999999999d is longer than 365d, the longest duration accepted",
        ),
    ],
    ids=["infinite-window", "window-over-7d", "nan", "cooldown-overflows-dates"],
)
def test_durations_are_bounded_when_the_file_is_read(tmp_path, edit, expected):
    """Before, these validated and then every pass crashed on the date arithmetic (OverflowError)."""
    errors = refused(tmp_path, GOOD.replace(*edit))
    assert [e.split(": ", 2)[2] for e in errors] == [expected]


def test_the_longest_accepted_durations_survive_a_decision():
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    longest = parse_duration("365d")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert now - timedelta(seconds=longest) < now < now + timedelta(seconds=longest)
    with pytest.raises(ValueError, match="longer than 365d"):
        parse_duration(longest + 1)
    assert parse_duration("30") == 30  # plain seconds, as environment variables carry them


def test_an_unreadable_folder_keeps_the_last_good_set(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text(GOOD)
    source = PolicySource(tmp_path)
    source.refresh()

    def out_of_descriptors(_self):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(Path, "iterdir", out_of_descriptors)
    reload = source.refresh()
    assert reload.error is not None
    assert "Too many open files" in str(reload.error)
    assert [p.name for p in source.policies().policies] == ["raise-grace"]
