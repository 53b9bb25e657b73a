"""deploy/iam: the machine-readable permissions and the standalone least-privilege policy."""

from __future__ import annotations

import json

from tests.deploy.conftest import STANDALONE_POLICY
from tests.deploy.iam import (
    actions_of,
    all_permissions,
    condition_problems,
    load_permissions,
    parliament_findings,
    unaccepted_parliament_findings,
)

DESIGN_ACTIONS = {
    "raise_grace_period",
    "enable_circuit_breaker",
    "rollback_task_definition",
    "scale_capacity_provider",
    "raise_memory",
    "notify",
}


def test_permissions_json_has_every_category_and_action():
    permissions = load_permissions()
    assert set(permissions) == {
        "reads",
        "state",
        "actions",
        "events_queue",
        "events_queue_enforce",
        "lease_table",
        "evidence_table",
        "evidence_table_enforce",
        "member_accounts",
        "notifications",
    }
    assert set(permissions["actions"]) == DESIGN_ACTIONS
    assert permissions["actions"]["notify"] == []
    for name, needed in [(k, v) for k, v in permissions.items() if k != "actions"] + list(
        permissions["actions"].items()
    ):
        assert len(needed) == len(set(needed)), f"{name} lists an action twice"
        assert all(":" in action for action in needed), name
    mutating_prefixes = ("Update", "Register", "Tag", "Untag", "Pass", "Put", "Delete")
    assert not [a for a in permissions["reads"] if a.split(":")[1].startswith(mutating_prefixes)]


def test_standalone_policy_grants_exactly_the_permissions():
    policy = json.loads(STANDALONE_POLICY.read_text())
    granted = {action for statement in policy["Statement"] for action in actions_of(statement)}
    assert granted == all_permissions(load_permissions())
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    assert len({s["Sid"] for s in policy["Statement"]}) == len(policy["Statement"])


def test_standalone_policy_conditions():
    policy = json.loads(STANDALONE_POLICY.read_text())
    assert condition_problems(policy["Statement"]) == []


def test_standalone_policy_parliament():
    findings = parliament_findings(STANDALONE_POLICY.read_text())
    assert unaccepted_parliament_findings(findings) == []


def test_standalone_policy_names_the_roles_and_log_groups_to_replace():
    policy = json.loads(STANDALONE_POLICY.read_text())
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["PassTaskRolesToEcsTasksOnly"]["Resource"] == [
        "arn:aws:iam::*:role/YOUR-TASK-ROLE",
        "arn:aws:iam::*:role/YOUR-EXECUTION-ROLE",
    ]
    assert by_sid["ReadContainerLogsOfManagedServices"]["Resource"].endswith(
        ":log-group:/ecs/YOUR-SERVICES-*:log-stream:*"
    )
