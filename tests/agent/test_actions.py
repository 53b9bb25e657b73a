"""Every action is registered with a params schema, its IAM permissions and a dry-run description."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.actions import REGISTRY
from agent.actions.raise_memory import FARGATE_SIZES, fargate_size

PERMISSIONS = Path(__file__).resolve().parents[2] / "deploy" / "iam" / "permissions.json"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_action_declares_what_it_needs(name):
    action = REGISTRY[name]
    assert action.name == name
    assert action.dry_run_description.startswith("would ")
    action.params_model.model_validate({})  # every parameter has a safe default
    assert all(":" in permission for permission in action.permissions)
    assert bool(action.permissions) == (name != "notify")


def test_permissions_granted_by_the_templates_match_the_actions():
    granted = json.loads(PERMISSIONS.read_text())["actions"]
    assert {name: sorted(a.permissions) for name, a in REGISTRY.items()} == {n: sorted(p) for n, p in granted.items()}


@given(st.sampled_from(sorted(FARGATE_SIZES)), st.integers(1, 122880))
def test_fargate_sizes_are_always_valid_pairs(cpu, memory):
    size = fargate_size(cpu, memory)
    if size is None:
        assert memory > max(FARGATE_SIZES[16384])
    else:
        units, mib = size
        assert units >= cpu
        assert mib >= memory
        assert mib in FARGATE_SIZES[units]
