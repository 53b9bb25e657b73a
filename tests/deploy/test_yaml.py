"""yamllint over the deployment YAML; shell syntax of the CI scripts."""

from __future__ import annotations

import shutil

import pytest

from tests.deploy.conftest import CHART, REPO, run, tool

YAML_FILES = [
    *sorted((REPO / "deploy").rglob("*.yaml")),
    *sorted((REPO / "deploy").rglob("*.yml")),
    CHART / "Chart.yaml",
    CHART / "values.yaml",
]


def test_yamllint():
    run([tool("yamllint"), "--strict", "-c", str(REPO / "deploy" / "ci" / "yamllint.yaml"), *map(str, YAML_FILES)])


@pytest.mark.parametrize("script", sorted((REPO / "deploy" / "ci").glob("*.sh")), ids=lambda p: p.name)
def test_ci_script_syntax(script):
    bash = shutil.which("bash")
    assert bash
    run([bash, "-n", str(script)])
