"""The policy example in README.md is a valid policy, and the bundled grace-period policy it shows."""

from __future__ import annotations

import re
from pathlib import Path

from agent.policy.loader import parse_policies
from tests.agent.fixtures import BUNDLED

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_policy_example_is_the_bundled_grace_period_policy():
    section = README.read_text().split("## Policies", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    loaded, errors = parse_policies(example.group(1), "README.md")
    assert errors == []
    [policy] = loaded
    bundled = next(p for p in BUNDLED.policies if p.name == policy.name)
    assert policy.policy.spec.model_dump() == bundled.policy.spec.model_dump()
    assert policy.params == bundled.params
    assert policy.escalation_params == bundled.escalation_params
